// Credits: the live balance, buying credits, promo codes, the invoiced spending limit,
// auto top-up, alerts, grants and purchase history.

import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { graphql } from "../../gql";
import type {
  AlertKind,
  AutoTopUpFieldsFragment,
  CreditsQuery,
  PurchaseCreditsInput,
  PurchaseCreditsMutation,
  PurchaseStatus,
} from "../../gql/graphql";
import { formatUsd, formatUsdExact, parseAmount, percentOf, toUnits } from "../../lib/money";
import { mutate, subscribe, type UserError } from "../api";
import { type PageProps, useConfig } from "../app";
import { cardProblem, loadStripe, paymentMethodId } from "../stripe";
import {
  Badge,
  Button,
  Card,
  EmptyState,
  Field,
  FormErrors,
  formatDate,
  IconBell,
  IconWallet,
  Loadable,
  Money,
  newKey,
  Notice,
  type QueryState,
  Skeleton,
  titleCase,
  useForm,
  useQuery,
} from "../ui";
import {
  CardInput,
  type CardHandle,
  type Credits,
  describeMethod,
  PAYMENT_METHODS,
  type PaymentMethod,
  SETUP_INTENT,
} from "./shared";
import { AddBankAccount, useRefetchWhileProcessing } from "./bank-account";

const CREDITS_QUERY = graphql(`
  query Credits($id: ID!) { team(id: $id) { id credits { ...CreditsFields } } }
`);
const CREDITS_LIVE = graphql(`
  subscription CreditsLive($teamId: ID!) { creditsUpdated(teamId: $teamId) { ...CreditsFields } }
`);

type SetCredits = (credits: Credits) => void;

export function CreditsPage(props: PageProps): JSX.Element {
  const state = useQuery(CREDITS_QUERY, { id: props.teamId }, (answer, shown) => {
    const [fresh, old] = [answer.team?.credits, shown?.team?.credits];
    return fresh && old && Date.parse(old.updatedAt) > Date.parse(fresh.updatedAt) ? (shown as typeof answer) : answer;
  });
  // Work that finishes in the background (a 3-D Secure confirmation, a webhook, an auto
  // top-up charge) shows up as a credits change or an alert: each one bumps `changes`, and
  // the lists that such work alters (purchases, payment methods, auto top-up) refetch.
  const [changes, setChanges] = useState(0);
  const bump = (): void => setChanges((value) => value + 1);
  // The query, mutations and the subscription all deliver Credits; keep the newest, so a
  // slow answer never overwrites a later state the subscription already showed.
  const setCredits: SetCredits = (credits) =>
    state.setData((previous) => {
      const shown = previous?.team?.credits;
      return shown && Date.parse(shown.updatedAt) > Date.parse(credits.updatedAt) ? previous : { team: { id: props.teamId, credits } };
    });

  // Live balance: the subscription answers with the current state, then every change.
  useEffect(() => {
    let first = true;
    return subscribe(CREDITS_LIVE, { teamId: props.teamId }, (data) => {
      setCredits(data.creditsUpdated);
      if (!first) bump();
      first = false;
    });
  }, [props.teamId]);

  const credits = state.data?.team?.credits ?? null;
  return (
    <div class="grid">
      <div class="col-wide">
        <BalanceCard state={state} />
        {props.canEdit && <BuyCredits teamId={props.teamId} onCredits={setCredits} onPurchase={bump} changes={changes} />}
        <Grants credits={credits} loading={!credits} canEdit={props.canEdit} />
        <Purchases teamId={props.teamId} changes={changes} />
      </div>
      <div class="col-narrow">
        {props.canEdit && <PromoCode teamId={props.teamId} onCredits={setCredits} />}
        <SpendingLimit teamId={props.teamId} credits={credits} canEdit={props.canEdit} onCredits={setCredits} />
        <AutoTopUp teamId={props.teamId} canEdit={props.canEdit} changes={changes} />
        <Alerts teamId={props.teamId} onAlert={bump} />
      </div>
    </div>
  );
}

const STATUS: Record<Credits["status"], [string, "green" | "amber" | "red"]> = {
  ACTIVE: ["Active", "green"],
  CREDITS_EXHAUSTED: ["Credits exhausted", "red"],
  INVOICED_LIMIT_REACHED: ["Invoiced limit reached", "red"],
};

function BalanceCard(props: { state: QueryState<CreditsQuery> }): JSX.Element {
  return (
    <Card class="balance" testid="balance-card">
      <Loadable
        state={props.state}
        skeleton={
          <>
            <Skeleton lines={1} height={44} />
            <Skeleton lines={2} />
          </>
        }
      >
        {(data) => {
          const credits = data.team?.credits;
          if (!credits) return <EmptyState title="Team not found" />;
          const [label, tone] = STATUS[credits.status];
          const limitOn = toUnits(credits.invoicedSpendingLimit) > 0n;
          const used = percentOf(credits.invoicedThisMonth, credits.invoicedSpendingLimit);
          return (
            <>
              <div class="balance-head">
                <div>
                  <div class="eyebrow">Available credits</div>
                  <div class="balance-total" data-testid="balance-total" title={`${formatUsdExact(credits.total)} exactly`}>
                    {formatUsd(credits.total)}
                  </div>
                </div>
                <span data-testid="billing-status">
                  <Badge tone={tone}>{label}</Badge>
                </span>
              </div>
              <div class="tiles">
                <Tile label="Prepaid" value={credits.prepaid} testid="balance-prepaid" />
                <Tile label="Promotional" value={credits.promotional} testid="balance-promotional" />
                <Tile label="Free" value={credits.free} testid="balance-free" />
              </div>
              <div class="invoiced">
                <div class="invoiced-row">
                  <span>Invoiced this month</span>
                  <span data-testid="invoiced-this-month">
                    <strong>
                      <Money value={credits.invoicedThisMonth} />
                    </strong>
                    {limitOn && (
                      <>
                        {" of "}
                        <Money value={credits.invoicedSpendingLimit} /> limit
                      </>
                    )}
                  </span>
                </div>
                {limitOn ? (
                  <div class="bar" role="progressbar" aria-valuenow={used} aria-valuemin={0} aria-valuemax={100}>
                    <div class={`bar-fill${used >= 100 ? " bar-full" : used >= 80 ? " bar-warn" : ""}`} style={{ width: `${used}%` }} />
                  </div>
                ) : (
                  <p class="muted small">
                    Monthly invoiced billing is off: requests stop when credits run out.
                  </p>
                )}
              </div>
              <p class="muted small">Updated {formatDate(credits.updatedAt, true)}</p>
            </>
          );
        }}
      </Loadable>
    </Card>
  );
}

function Tile(props: { label: string; value: string; testid: string }): JSX.Element {
  return (
    <div class="tile">
      <div class="tile-label">{props.label}</div>
      <Money class="tile-value" value={props.value} testid={props.testid} />
    </div>
  );
}

// ------------------------------------------------------------------ buying credits

const PURCHASE_CREDITS = graphql(`
  mutation PurchaseCredits($input: PurchaseCreditsInput!) {
    purchaseCredits(input: $input) {
      purchase { id amount status clientSecret failureReason expectedSettlementAt paymentMethod { id } }
      credits { ...CreditsFields }
      errors { code message field }
    }
  }
`);

const PRESETS = ["10", "25", "100", "500"];

function BuyCredits(props: { teamId: string; onCredits: SetCredits; onPurchase: () => void; changes: number }): JSX.Element {
  const methods = useQuery(PAYMENT_METHODS, { id: props.teamId });
  // A card saved by a purchase (at once, or after 3-D Secure) joins the picker.
  useEffect(() => {
    if (props.changes) methods.reload();
  }, [props.changes]);
  return (
    <Card title="Buy credits" subtitle="Prepaid credits are used after free and promotional credits." testid="buy-credits">
      <Loadable state={methods} skeleton={<Skeleton lines={3} />}>
        {(data) => <BuyForm {...props} methods={data.team?.paymentMethods ?? []} onSaved={methods.reload} />}
      </Loadable>
    </Card>
  );
}

type Source = string; // a payment method id, or "new"

function BuyForm(props: {
  teamId: string;
  methods: PaymentMethod[];
  onCredits: SetCredits;
  onPurchase: () => void;
  onSaved: () => void;
}): JSX.Element {
  const form = useForm();
  const config = useConfig();
  const cards = props.methods.filter((pm) => pm.type === "CARD");
  const banks = props.methods.filter((pm) => pm.type === "BANK_ACCOUNT");
  const [amount, setAmount] = useState("25");
  const [method, setMethod] = useState<"CARD" | "BANK_TRANSFER">("CARD");
  const preferred = (list: PaymentMethod[]): Source => (list.find((pm) => pm.isDefault) ?? list[0])?.id ?? "new";
  const [source, setSource] = useState<Source>(() => preferred(cards));
  // The card element is remounted (emptied) after each purchase it paid: a filled-in "New
  // card" must never be charged (and saved) a second time by the next Buy.
  const [cardEntry, setCardEntry] = useState(0);
  const card = useRef<CardHandle | null>(null);
  const key = useRef(newKey("purchase"));
  const [confirming, setConfirming] = useState(false);
  // A new card that is saved only once 3-D Secure passes: when it joins the list, choose it.
  const awaiting = useRef<Set<string> | null>(null);
  useEffect(() => {
    const known = awaiting.current;
    const added = known && cards.find((pm) => !known.has(pm.id));
    if (added) {
      awaiting.current = null;
      setSource(added.id);
    }
  }, [props.methods]);
  // A chosen method that has gone (removed elsewhere) falls back to the preferred one.
  const list = method === "CARD" ? cards : banks;
  const chosen: Source = source === "new" || list.some((pm) => pm.id === source) ? source : preferred(list);

  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      // Everything a person typed is checked before any card is set up or charged.
      const value = parseAmount(amount);
      if (value === null || toUnits(value) <= 0n) {
        return [{ code: "INVALID_AMOUNT", message: "Enter an amount in dollars, like 25 or 25.50.", field: "amount" }];
      }
      const input: PurchaseCreditsInput = { teamId: props.teamId, amount: value, method, idempotencyKey: key.current };
      const newCard = method === "CARD" && chosen === "new";
      if (newCard) {
        const handle = card.current;
        if (!handle) return [{ code: "CARD_INCOMPLETE", message: "Card entry is still loading.", field: "card" }];
        if (!handle.complete()) {
          return [{ code: "CARD_INCOMPLETE", message: "Enter the card number, expiry date and CVC.", field: "card" }];
        }
        const setup = await mutate(SETUP_INTENT, { input: { teamId: props.teamId, type: "CARD" } });
        if (setup.errors.length || !setup.clientSecret) return setup.errors;
        const confirmed = await handle.stripe
          .confirmCardSetup(setup.clientSecret, { payment_method: { card: handle.element } })
          .catch(() => ({ error: { code: "card_entry_failed" }, setupIntent: undefined }));
        if (confirmed.error || !confirmed.setupIntent) {
          return [{ code: "CARD_DECLINED", message: cardProblem(confirmed.error), field: "card" }];
        }
        input.stripePaymentMethodId = paymentMethodId(confirmed.setupIntent);
      } else if (chosen !== "new") {
        input.paymentMethodId = chosen;
      }
      const payload = await mutate(PURCHASE_CREDITS, { input });
      if (payload.credits) props.onCredits(payload.credits);
      const purchase = payload.purchase;
      if (payload.errors.length || !purchase) return payload.errors;
      key.current = newKey("purchase");
      props.onPurchase();
      if (newCard) {
        // The card is on file now (or once 3-D Secure passes): pay with it next time.
        setCardEntry((value) => value + 1);
        if (purchase.paymentMethod) setSource(purchase.paymentMethod.id);
        else awaiting.current = new Set(cards.map((pm) => pm.id));
        props.onSaved();
      }
      return finish(purchase);
    });
  };

  const finish = async (purchase: NonNullable<PurchaseCreditsMutation["purchaseCredits"]["purchase"]>): Promise<UserError[] | string> => {
    if (purchase.status === "REQUIRES_ACTION" && purchase.clientSecret) {
      // 3-D Secure: Stripe.js shows the bank's challenge (loaded now if a saved card paid).
      const stripe = card.current?.stripe ?? (await loadStripe(config.stripeJsUrl, config.stripePublishableKey));
      setConfirming(true);
      try {
        const result = await stripe
          .confirmCardPayment(purchase.clientSecret)
          .catch(() => ({ error: { code: "card_entry_failed" }, paymentIntent: undefined }));
        if (result.error) return [{ code: "CARD_DECLINED", message: cardProblem(result.error, "authentication"), field: "card" }];
      } finally {
        setConfirming(false);
        props.onPurchase();
        props.onSaved();
      }
      return `Payment of ${formatUsd(purchase.amount)} confirmed. Credits appear in a moment.`;
    }
    if (purchase.status === "FAILED" || purchase.status === "CANCELED") {
      return [{ code: "PAYMENT_FAILED", message: purchase.failureReason ?? "The payment failed.", field: "paymentMethodId" }];
    }
    if (purchase.status === "PROCESSING") {
      return `Bank transfer of ${formatUsd(purchase.amount)} started. Credits arrive when it clears${
        purchase.expectedSettlementAt ? ` (expected ${formatDate(purchase.expectedSettlementAt)})` : ""
      }.`;
    }
    return `Added ${formatUsd(purchase.amount)} of prepaid credits.`;
  };

  // Card-level errors from Stripe.js or the payment method chosen.
  const cardErrors = form.errorFor("card", "stripePaymentMethodId", "paymentMethodId");
  const typed = parseAmount(amount);
  return (
    <form class="stack" onSubmit={submit} noValidate data-testid="buy-form">
      <Field label="Amount (USD)" name="amount" form={form} hint="Up to 2 decimal places.">
        <div class="amount-row">
          <span class="amount-input">
            <span class="prefix" aria-hidden="true">
              $
            </span>
            <input
              name="amount"
              inputMode="decimal"
              value={amount}
              onInput={(event) => setAmount(event.currentTarget.value)}
              data-testid="buy-amount"
              aria-invalid={form.errorFor("amount").length > 0}
            />
          </span>
          <div class="chips">
            {PRESETS.map((preset) => (
              <button
                type="button"
                key={preset}
                class={amount === preset ? "chip chip-on" : "chip"}
                aria-pressed={amount === preset}
                onClick={() => setAmount(preset)}
              >
                ${preset}
              </button>
            ))}
          </div>
        </div>
      </Field>
      <Field label="Pay with" name="method" form={form}>
        <div class="segmented" role="radiogroup" aria-label="Pay with">
          {(["CARD", "BANK_TRANSFER"] as const).map((value) => (
            <button
              type="button"
              key={value}
              role="radio"
              aria-checked={method === value}
              class={method === value ? "segment segment-on" : "segment"}
              onClick={() => {
                setMethod(value);
                setSource(value === "CARD" ? preferred(cards) : preferred(banks));
              }}
            >
              {value === "CARD" ? "Card" : "Bank transfer"}
            </button>
          ))}
        </div>
      </Field>
      {method === "CARD" ? (
        <fieldset class="field" data-field="paymentMethodId">
          <legend class="field-label">Card</legend>
          <div class="choices">
            {cards.map((pm) => (
              <label class="choice" key={pm.id}>
                <input type="radio" name="source" checked={chosen === pm.id} onChange={() => setSource(pm.id)} />
                {describeMethod(pm)}
                {pm.isDefault && <Badge tone="blue">Default</Badge>}
              </label>
            ))}
            <label class="choice">
              <input
                type="radio"
                name="source"
                checked={chosen === "new"}
                onChange={() => setSource("new")}
                data-testid="buy-new-card"
              />
              New card
            </label>
          </div>
          {chosen === "new" && <CardInput key={cardEntry} handle={card} invalid={cardErrors.length > 0} />}
          {chosen === "new" && <span class="field-hint">Saved to the team's payment methods once the payment succeeds.</span>}
          {cardErrors.map((error) => (
            <span class="field-error" role="alert" data-code={error.code} data-testid="error-card" key={error.message}>
              {error.message}
            </span>
          ))}
        </fieldset>
      ) : (
        <fieldset class="field" data-field="paymentMethodId">
          <legend class="field-label">Bank account</legend>
          {banks.length ? (
            <div class="choices">
              {banks.map((pm) => (
                <label class="choice" key={pm.id}>
                  <input type="radio" name="source" checked={chosen === pm.id} onChange={() => setSource(pm.id)} />
                  {describeMethod(pm)}
                </label>
              ))}
            </div>
          ) : (
            <AddBankAccount teamId={props.teamId} first={!props.methods.length} onAdded={(id) => { setSource(id); props.onSaved(); }} />
          )}
          <span class="field-hint">ACH debits take 2–3 business days; credits arrive when the payment clears.</span>
          {cardErrors.map((error) => (
            <span class="field-error" role="alert" data-code={error.code} data-testid="error-card" key={error.message}>
              {error.message}
            </span>
          ))}
        </fieldset>
      )}
      <FormErrors form={form} known={["amount", "method", "card", "stripePaymentMethodId", "paymentMethodId"]} />
      <Notice form={form} />
      <div class="row">
        <Button busy={form.busy} testid="buy-submit">
          {confirming ? "Confirming with your bank…" : `Buy ${typed !== null && typed !== "0" ? formatUsd(typed) : "credits"}`}
        </Button>
      </div>
    </form>
  );
}

// --------------------------------------------------------------------- promo codes

const REDEEM = graphql(`
  mutation RedeemPromoCode($input: RedeemPromoCodeInput!) {
    redeemPromoCode(input: $input) { grant { amount expiresAt } credits { ...CreditsFields } errors { code message field } }
  }
`);

function PromoCode(props: { teamId: string; onCredits: SetCredits }): JSX.Element {
  const form = useForm();
  const [code, setCode] = useState("");
  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      if (!code.trim()) return [{ code: "INVALID_INPUT", message: "Enter the code.", field: "code" }];
      const payload = await mutate(REDEEM, { input: { teamId: props.teamId, code: code.trim() } });
      if (payload.credits) props.onCredits(payload.credits);
      if (payload.errors.length) return payload.errors;
      setCode("");
      return `Code applied: ${formatUsd(payload.grant?.amount)} of promotional credits.`;
    });
  };
  return (
    <Card title="Promo code" testid="promo-card">
      <form class="stack" onSubmit={submit} noValidate data-testid="promo-form">
        <Field label="Code" name="code" form={form}>
          <div class="row">
            <input
              name="code"
              value={code}
              onInput={(event) => setCode(event.currentTarget.value)}
              placeholder="LAUNCH25"
              autoComplete="off"
              data-testid="promo-code"
            />
            <Button busy={form.busy} kind="secondary" testid="promo-submit">
              Redeem
            </Button>
          </div>
        </Field>
        <FormErrors form={form} known={["code"]} />
        <Notice form={form} />
      </form>
    </Card>
  );
}

// ------------------------------------------------------------------ spending limit

const SET_LIMIT = graphql(`
  mutation SetInvoicedSpendingLimit($input: SetInvoicedSpendingLimitInput!) {
    setInvoicedSpendingLimit(input: $input) { credits { ...CreditsFields } errors { code message field } }
  }
`);

function SpendingLimit(props: {
  teamId: string;
  credits: Credits | null;
  canEdit: boolean;
  onCredits: SetCredits;
}): JSX.Element {
  const form = useForm();
  const [limit, setLimit] = useState<string | null>(null);
  const current = props.credits?.invoicedSpendingLimit ?? null;
  const value = limit ?? (current ? formatPlain(current) : "");
  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      const limitValue = parseAmount(value);
      if (limitValue === null) {
        return [{ code: "INVALID_AMOUNT", message: "Enter a monthly limit in dollars, like 500 (0 turns it off).", field: "limit" }];
      }
      const payload = await mutate(SET_LIMIT, { input: { teamId: props.teamId, limit: limitValue } });
      if (payload.errors.length) return payload.errors;
      if (payload.credits) props.onCredits(payload.credits);
      setLimit(null);
      return "Spending limit saved.";
    });
  };
  return (
    <Card
      title="Invoiced spending limit"
      subtitle="Usage beyond your credits is invoiced monthly, up to this limit. $0 turns it off."
      testid="limit-card"
    >
      {!props.credits ? (
        <Skeleton lines={2} />
      ) : props.canEdit ? (
        <form class="stack" onSubmit={submit} noValidate data-testid="limit-form">
          <Field label="Monthly limit (USD)" name="limit" form={form}>
            <div class="row">
              <div class="amount-row">
                <span class="prefix">$</span>
                <input
                  name="limit"
                  inputMode="decimal"
                  value={value}
                  onInput={(event) => setLimit(event.currentTarget.value)}
                  data-testid="limit-input"
                />
              </div>
              <Button busy={form.busy} kind="secondary" testid="limit-submit">
                Save
              </Button>
            </div>
          </Field>
          <FormErrors form={form} known={["limit"]} />
          <Notice form={form} />
        </form>
      ) : (
        <div class="readout" data-testid="limit-readout">
          {toUnits(props.credits.invoicedSpendingLimit) > 0n ? (
            <>
              <Money class="readout-value" value={props.credits.invoicedSpendingLimit} />
              <span class="muted">
                {" "}
                per month · <Money value={props.credits.invoicedRemaining} /> left
              </span>
            </>
          ) : (
            <>
              <span class="readout-value">Off</span>
              <span class="muted"> · requests stop when credits run out</span>
            </>
          )}
        </div>
      )}
    </Card>
  );
}

/** "100.00000000" -> "100.00" for an input box (2 decimals is what limits accept). */
function formatPlain(value: string): string {
  const [whole, fraction = ""] = value.split(".");
  const trimmed = fraction.replace(/0+$/, "");
  return `${whole}.${trimmed.padEnd(2, "0")}`;
}

// ---------------------------------------------------------------------- auto top-up

const AUTO_TOP_UP_FIELDS = graphql(`
  fragment AutoTopUpFields on AutoTopUp { enabled threshold amount monthlyLimit pausedReason }
`);
void AUTO_TOP_UP_FIELDS; // spread by name in the documents below

const AUTO_TOP_UP = graphql(`
  query AutoTopUp($id: ID!) { team(id: $id) { id autoTopUp { ...AutoTopUpFields } } }
`);
const CONFIGURE_AUTO_TOP_UP = graphql(`
  mutation ConfigureAutoTopUp($input: ConfigureAutoTopUpInput!) {
    configureAutoTopUp(input: $input) { autoTopUp { ...AutoTopUpFields } errors { code message field } }
  }
`);

type AutoTopUpData = AutoTopUpFieldsFragment;

function AutoTopUp(props: { teamId: string; canEdit: boolean; changes: number }): JSX.Element {
  const state = useQuery(AUTO_TOP_UP, { id: props.teamId });
  // A top-up runs after the save, in the background: its failure pauses auto top-up and
  // arrives as an alert (a success as a credits change), so refetch on either.
  useEffect(() => {
    if (props.changes) state.reload();
  }, [props.changes]);
  return (
    <Card title="Auto top-up" subtitle="Buy credits with the default card when the balance runs low." testid="auto-top-up">
      <Loadable state={state} skeleton={<Skeleton lines={3} />}>
        {(data) =>
          data.team ? (
            <AutoTopUpForm
              teamId={props.teamId}
              canEdit={props.canEdit}
              initial={data.team.autoTopUp}
              onSaved={(autoTopUp) => state.setData(() => ({ team: { id: props.teamId, autoTopUp } }))}
            />
          ) : (
            <EmptyState title="Team not found" />
          )
        }
      </Loadable>
    </Card>
  );
}

function AutoTopUpForm(props: {
  teamId: string;
  canEdit: boolean;
  initial: AutoTopUpData;
  onSaved: (value: AutoTopUpData) => void;
}): JSX.Element {
  const form = useForm();
  // Never configured (all zero): suggest values rather than zeros the server would refuse.
  const fresh = !props.initial.enabled && toUnits(props.initial.amount) === 0n;
  const [enabled, setEnabled] = useState(props.initial.enabled);
  const [threshold, setThreshold] = useState(fresh ? "10.00" : formatPlain(props.initial.threshold));
  const [amount, setAmount] = useState(fresh ? "50.00" : formatPlain(props.initial.amount));
  const [monthlyLimit, setMonthlyLimit] = useState(fresh ? "500.00" : formatPlain(props.initial.monthlyLimit));
  const paused = props.initial.pausedReason;
  // "Auto top-up is on." must not stay up once the first charge has failed and paused it.
  useEffect(() => {
    if (paused) form.setNotice(null);
  }, [paused]);
  if (!props.canEdit) {
    return (
      <div class="readout stack-tight" data-testid="auto-top-up-readout">
        <div>
          {props.initial.enabled && !paused ? <Badge tone="green">On</Badge> : !props.initial.enabled ? <Badge>Off</Badge> : null}
          {paused && <Badge tone="amber">Paused</Badge>}
        </div>
        {props.initial.enabled && (
          <span class="muted">
            Buys <Money value={props.initial.amount} /> when the balance falls below <Money value={props.initial.threshold} />, at
            most <Money value={props.initial.monthlyLimit} /> a month.
          </span>
        )}
        {paused && <span class="muted">{paused}</span>}
      </div>
    );
  }
  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      const values = { threshold: parseAmount(threshold), amount: parseAmount(amount), monthlyLimit: parseAmount(monthlyLimit) };
      const bad = (Object.keys(values) as (keyof typeof values)[]).filter((name) => values[name] === null);
      if (bad.length) {
        return bad.map((field) => ({ code: "INVALID_AMOUNT" as const, message: "Enter an amount in dollars, like 50.", field }));
      }
      const payload = await mutate(CONFIGURE_AUTO_TOP_UP, {
        input: {
          teamId: props.teamId,
          enabled,
          threshold: values.threshold as string,
          amount: values.amount as string,
          monthlyLimit: values.monthlyLimit as string,
        },
      });
      if (payload.errors.length) return payload.errors;
      if (payload.autoTopUp) props.onSaved(payload.autoTopUp);
      if (payload.autoTopUp?.pausedReason) return undefined; // the paused banner says it
      return enabled ? "Auto top-up is on." : "Auto top-up is off.";
    });
  };
  return (
    <form class="stack" onSubmit={submit} noValidate data-testid="auto-top-up-form">
      {paused && (
        <div class="form-warning" role="status" data-testid="auto-top-up-paused">
          Paused: {paused} Save again to resume.
        </div>
      )}
      <div class="field" data-field="enabled">
        <label class="toggle">
          <input
            type="checkbox"
            checked={enabled}
            onChange={(event) => setEnabled(event.currentTarget.checked)}
            data-testid="auto-top-up-enabled"
          />
          <span class="toggle-track" aria-hidden="true" />
          Top up automatically
        </label>
        {form.errorFor("enabled").map((error) => (
          <span class="field-error" role="alert" data-code={error.code} data-testid="error-enabled" key={error.message}>
            {error.message}
          </span>
        ))}
      </div>
      <div class="fields-3">
        <Field label="When below ($)" name="threshold" form={form}>
          <input name="threshold" inputMode="decimal" value={threshold} onInput={(event) => setThreshold(event.currentTarget.value)} />
        </Field>
        <Field label="Buy ($)" name="amount" form={form}>
          <input name="amount" inputMode="decimal" value={amount} onInput={(event) => setAmount(event.currentTarget.value)} />
        </Field>
        <Field label="Monthly cap ($)" name="monthlyLimit" form={form}>
          <input
            name="monthlyLimit"
            inputMode="decimal"
            value={monthlyLimit}
            onInput={(event) => setMonthlyLimit(event.currentTarget.value)}
          />
        </Field>
      </div>
      <FormErrors form={form} known={["threshold", "amount", "monthlyLimit", "enabled"]} />
      <Notice form={form} />
      <div class="row">
        <Button busy={form.busy} kind="secondary" testid="auto-top-up-submit">
          Save
        </Button>
      </div>
    </form>
  );
}

// ---------------------------------------------------------------------------- alerts

const ALERT_FIELDS = graphql(`fragment AlertFields on BillingAlert { id kind message createdAt }`);
void ALERT_FIELDS;
const ALERTS = graphql(`query Alerts($id: ID!) { team(id: $id) { id alerts(first: 10) { ...AlertFields } } }`);
const ALERTS_LIVE = graphql(`
  subscription AlertsLive($teamId: ID!) { billingAlerts(teamId: $teamId) { ...AlertFields } }
`);

/** Each alert kind in words, and how loud it is. */
const ALERT_KIND: Record<AlertKind, [string, "amber" | "red"]> = {
  INVOICED_LIMIT_80: ["Near the spending limit", "amber"],
  INVOICED_LIMIT_100: ["Spending limit reached", "red"],
  CREDITS_LOW: ["Credits low", "amber"],
  CREDITS_EXHAUSTED: ["Credits used up", "red"],
  AUTO_TOP_UP_FAILED: ["Auto top-up failed", "red"],
  PAYMENT_FAILED: ["Payment failed", "red"],
};

function Alerts(props: { teamId: string; onAlert: () => void }): JSX.Element {
  const state = useQuery(ALERTS, { id: props.teamId });
  useEffect(
    () =>
      subscribe(ALERTS_LIVE, { teamId: props.teamId }, (data) => {
        const alert = data.billingAlerts;
        props.onAlert();
        state.setData((previous) => {
          const alerts = previous?.team?.alerts ?? [];
          if (alerts.some((known) => known.id === alert.id)) return previous;
          return { team: { id: props.teamId, alerts: [alert, ...alerts].slice(0, 10) } };
        });
      }),
    [props.teamId],
  );
  return (
    <Card title="Alerts" testid="alerts">
      <Loadable state={state} skeleton={<Skeleton lines={2} />}>
        {(data) =>
          data.team?.alerts.length ? (
            <ul class="alerts">
              {data.team.alerts.map((alert) => {
                const [label, tone] = ALERT_KIND[alert.kind] ?? [titleCase(alert.kind), "red"];
                return (
                  <li key={alert.id} class="alert-item" data-testid="alert" data-kind={alert.kind}>
                    <Badge tone={tone}>{label}</Badge>
                    <div>
                      <div>{alert.message}</div>
                      <div class="muted small">{formatDate(alert.createdAt, true)}</div>
                    </div>
                  </li>
                );
              })}
            </ul>
          ) : (
            <EmptyState title="No alerts" icon={<IconBell />}>
              You will see low balances, limits reached and failed payments here.
            </EmptyState>
          )
        }
      </Loadable>
    </Card>
  );
}

// ---------------------------------------------------------------------------- grants

const KIND_TONE: Record<string, "green" | "blue" | "grey"> = { FREE: "green", PROMOTIONAL: "blue", PREPAID: "grey" };

function Grants(props: { credits: Credits | null; loading: boolean; canEdit: boolean }): JSX.Element {
  return (
    <Card title="Credit grants" subtitle="Live grants, in the order they are used." testid="grants">
      {props.loading || !props.credits ? (
        <Skeleton lines={3} />
      ) : props.credits.grants.length ? (
        <table class="table">
          <thead>
            <tr>
              <th>Kind</th>
              <th>Description</th>
              <th class="num">Remaining</th>
              <th>Expires</th>
            </tr>
          </thead>
          <tbody>
            {props.credits.grants.map((grant) => (
              <tr key={grant.id}>
                <td data-label="Kind">
                  <Badge tone={KIND_TONE[grant.kind]}>{titleCase(grant.kind)}</Badge>
                </td>
                <td data-label="Description">{grant.description ?? <span class="muted">—</span>}</td>
                <td class="num" data-label="Remaining">
                  <Money value={grant.remaining} />{" "}
                  <span class="muted">
                    of <Money value={grant.amount} />
                  </span>
                </td>
                <td data-label="Expires">{grant.expiresAt ? formatDate(grant.expiresAt) : <span class="muted">Never</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <EmptyState title="No credits left" icon={<IconWallet />}>
          {props.canEdit
            ? "Buy credits or redeem a promo code to get started."
            : "An admin of this team can buy credits or redeem a promo code."}
        </EmptyState>
      )}
    </Card>
  );
}

// ------------------------------------------------------------------------- purchases

const PURCHASES = graphql(`
  query Purchases($id: ID!) {
    team(id: $id) {
      id
      purchases(first: 10) {
        edges { node { id amount method status failureReason createdAt paymentMethod { type brand last4 } } }
      }
    }
  }
`);

const PURCHASE_STATUS: Record<PurchaseStatus, [string, "green" | "amber" | "red" | "grey"]> = {
  SUCCEEDED: ["Paid", "green"],
  PROCESSING: ["Processing", "amber"],
  REQUIRES_ACTION: ["Needs authentication", "amber"],
  FAILED: ["Failed", "red"],
  CANCELED: ["Canceled", "grey"],
};

function Purchases(props: { teamId: string; changes: number }): JSX.Element {
  const state = useQuery(PURCHASES, { id: props.teamId });
  // New purchases (ours, auto top-ups) and status changes (3-D Secure, bank transfers
  // clearing) all change credits: refetch on each.
  useEffect(() => {
    if (props.changes) state.reload();
  }, [props.changes]);
  useRefetchWhileProcessing(!!state.data?.team?.purchases.edges.some((edge) => edge.node.status === "PROCESSING"), state.reload);
  return (
    <Card title="Purchases" subtitle="Each purchase's invoice is on the Invoices page." testid="purchases">
      <Loadable state={state} skeleton={<Skeleton lines={3} />}>
        {(data) => {
          const purchases = data.team?.purchases.edges.map((edge) => edge.node) ?? [];
          if (!purchases.length) return <EmptyState title="No purchases yet" />;
          return (
            <div class="table-scroll">
              <table class="table table-stack">
                <thead>
                  <tr>
                    <th>Date</th>
                    <th>Paid with</th>
                    <th>Status</th>
                    <th class="num">Amount</th>
                  </tr>
                </thead>
                <tbody>
                  {purchases.map((purchase) => {
                    const [label, tone] = PURCHASE_STATUS[purchase.status] ?? [titleCase(purchase.status), "grey"];
                    return (
                      <tr key={purchase.id} data-testid="purchase-row" data-status={purchase.status}>
                        <td data-label="Date">{formatDate(purchase.createdAt, true)}</td>
                        <td data-label="Paid with">
                          {purchase.paymentMethod ? describeMethod(purchase.paymentMethod) : titleCase(purchase.method)}
                        </td>
                        <td data-label="Status">
                          <Badge tone={tone}>{label}</Badge>
                          {purchase.failureReason && <div class="muted small">{purchase.failureReason}</div>}
                        </td>
                        <td class="num" data-label="Amount">
                          <Money value={purchase.amount} />
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          );
        }}
      </Loadable>
    </Card>
  );
}
