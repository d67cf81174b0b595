// Credits: the live balance, buying credits, promo codes, the invoiced spending limit,
// auto top-up, alerts, grants and purchase history.

import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { formatUsd, percentOf, toUnits } from "../../lib/money";
import { liveClient, mutate, type UserError } from "../api";
import { type PageProps, useConfig } from "../app";
import { loadStripe, paymentMethodId } from "../stripe";
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
  newKey,
  Notice,
  Skeleton,
  titleCase,
  useForm,
  useQuery,
} from "../ui";
import {
  CardInput,
  type CardHandle,
  CREDITS,
  type Credits,
  describeMethod,
  PAYMENT_METHOD,
  type PaymentMethod,
  USER_ERRORS,
} from "./shared";
import { AddBankAccount, useRefetchWhileProcessing } from "./bank-account";

const CREDITS_QUERY = `query Credits($id: ID!) { team(id: $id) { id credits { ${CREDITS} } } }`;
const CREDITS_LIVE = `subscription Live($teamId: ID!) { creditsUpdated(teamId: $teamId) { ${CREDITS} } }`;

type SetCredits = (credits: Credits) => void;

export function CreditsPage(props: PageProps): JSX.Element {
  const state = useQuery<{ team: { credits: Credits } | null }>(CREDITS_QUERY, { id: props.teamId }, (answer, shown) => {
    const [fresh, old] = [answer.team?.credits, shown?.team?.credits];
    return fresh && old && Date.parse(old.updatedAt) > Date.parse(fresh.updatedAt) ? (shown as typeof answer) : answer;
  });
  const [purchasesTick, setPurchasesTick] = useState(0);
  // The query, mutations and the subscription all deliver Credits; keep the newest, so a
  // slow answer never overwrites a later state the subscription already showed.
  const setCredits: SetCredits = (credits) =>
    state.setData((previous) => {
      const shown = previous?.team?.credits;
      return shown && Date.parse(shown.updatedAt) > Date.parse(credits.updatedAt) ? previous : { team: { credits } };
    });

  // Live balance: the subscription answers with the current state, then every change.
  useEffect(
    () =>
      liveClient().subscribe(CREDITS_LIVE, { teamId: props.teamId }, (data) => {
        const credits = data.creditsUpdated as Credits | undefined;
        if (credits) setCredits(credits);
      }),
    [props.teamId],
  );

  const credits = state.data?.team?.credits ?? null;
  return (
    <div class="grid">
      <div class="col-wide">
        <BalanceCard state={state} />
        {props.canEdit && (
          <BuyCredits
            teamId={props.teamId}
            onCredits={setCredits}
            onPurchase={() => setPurchasesTick((tick) => tick + 1)}
          />
        )}
        <Grants credits={credits} loading={!credits} canEdit={props.canEdit} />
        <Purchases teamId={props.teamId} tick={purchasesTick} />
      </div>
      <div class="col-narrow">
        {props.canEdit && <PromoCode teamId={props.teamId} onCredits={setCredits} />}
        <SpendingLimit teamId={props.teamId} credits={credits} canEdit={props.canEdit} onCredits={setCredits} />
        <AutoTopUp teamId={props.teamId} canEdit={props.canEdit} />
        <Alerts teamId={props.teamId} />
      </div>
    </div>
  );
}

const STATUS: Record<Credits["status"], [string, "green" | "amber" | "red"]> = {
  ACTIVE: ["Active", "green"],
  CREDITS_EXHAUSTED: ["Credits exhausted", "red"],
  INVOICED_LIMIT_REACHED: ["Invoiced limit reached", "red"],
};

function BalanceCard(props: { state: ReturnType<typeof useQuery<{ team: { credits: Credits } | null }>> }): JSX.Element {
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
                  <div class="balance-total" data-testid="balance-total" title={`${credits.total} USD`}>
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
                    <strong>{formatUsd(credits.invoicedThisMonth)}</strong>
                    {limitOn ? ` of ${formatUsd(credits.invoicedSpendingLimit)} limit` : ""}
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
      <div class="tile-value" data-testid={props.testid}>
        {formatUsd(props.value)}
      </div>
    </div>
  );
}

// ------------------------------------------------------------------ buying credits

const PAYMENT_METHODS = `query Methods($id: ID!) { team(id: $id) { id paymentMethods { ${PAYMENT_METHOD} } } }`;
const PURCHASE_FIELDS = `purchase { id amount status clientSecret failureReason expectedSettlementAt }
  credits { ${CREDITS} } ${USER_ERRORS}`;

interface PurchasePayload {
  purchase: {
    id: string;
    amount: string;
    status: "REQUIRES_ACTION" | "PROCESSING" | "SUCCEEDED" | "FAILED" | "CANCELED";
    clientSecret: string | null;
    failureReason: string | null;
    expectedSettlementAt: string | null;
  } | null;
  credits: Credits | null;
  errors: UserError[];
}

const PRESETS = ["10", "25", "100", "500"];

function BuyCredits(props: { teamId: string; onCredits: SetCredits; onPurchase: () => void }): JSX.Element {
  const methods = useQuery<{ team: { paymentMethods: PaymentMethod[] } | null }>(PAYMENT_METHODS, { id: props.teamId });
  return (
    <Card title="Buy credits" subtitle="Prepaid credits are used after free and promotional credits." testid="buy-credits">
      <Loadable state={methods} skeleton={<Skeleton lines={3} />}>
        {(data) => (
          <BuyForm
            {...props}
            methods={data.team?.paymentMethods ?? []}
            onSaved={methods.reload}
          />
        )}
      </Loadable>
    </Card>
  );
}

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
  const preferred = (list: PaymentMethod[]): string => (list.find((pm) => pm.isDefault) ?? list[0])?.id ?? "new";
  const [source, setSource] = useState<string>(() => preferred(cards));
  const card = useRef<CardHandle | null>(null);
  const key = useRef(newKey("purchase"));
  const [confirming, setConfirming] = useState(false);

  const chosen = method === "CARD" ? source : banks.length ? source : "";
  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      const input: Record<string, unknown> = {
        teamId: props.teamId,
        amount: amount.trim(),
        method,
        idempotencyKey: key.current,
      };
      if (method === "CARD" && source === "new") {
        const handle = card.current;
        if (!handle) return [{ code: "INVALID_INPUT", message: "Card entry is still loading.", field: "card" }];
        const setup = await mutate<{ clientSecret: string | null; errors: UserError[] }>(
          `mutation Setup($input: CreateSetupIntentInput!) { createSetupIntent(input: $input) { clientSecret ${USER_ERRORS} } }`,
          { input: { teamId: props.teamId, type: "CARD" } },
        );
        if (setup.errors.length || !setup.clientSecret) return setup.errors;
        const confirmed = await handle.stripe.confirmCardSetup(setup.clientSecret, {
          payment_method: { card: handle.element },
        });
        if (confirmed.error || !confirmed.setupIntent) {
          return [{ code: "PAYMENT_FAILED", message: confirmed.error?.message ?? "The card was not accepted.", field: "card" }];
        }
        input.stripePaymentMethodId = paymentMethodId(confirmed.setupIntent);
      } else if (chosen && chosen !== "new") {
        input.paymentMethodId = chosen;
      }
      const payload = await mutate<PurchasePayload>(
        `mutation Buy($input: PurchaseCreditsInput!) { purchaseCredits(input: $input) { ${PURCHASE_FIELDS} } }`,
        { input },
      );
      if (payload.credits) props.onCredits(payload.credits);
      const purchase = payload.purchase;
      if (payload.errors.length || !purchase) return payload.errors;
      key.current = newKey("purchase");
      props.onPurchase();
      if (source === "new") props.onSaved();
      if (purchase.status === "REQUIRES_ACTION" && purchase.clientSecret) {
        // 3-D Secure: Stripe.js shows the bank's challenge (loaded now if a saved card paid).
        const stripe = card.current?.stripe ?? (await loadStripe(config.stripeJsUrl, config.stripePublishableKey));
        setConfirming(true);
        try {
          const result = await stripe.confirmCardPayment(purchase.clientSecret);
          if (result.error) {
            return [{ code: "PAYMENT_FAILED", message: result.error.message ?? "Authentication failed.", field: "card" }];
          }
        } finally {
          setConfirming(false);
          props.onPurchase();
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
    });
  };

  // Card-level errors from Stripe.js or the payment method chosen.
  const cardErrors = form.errorFor("card", "stripePaymentMethodId", "paymentMethodId");
  return (
    <form class="stack" onSubmit={submit} noValidate data-testid="buy-form">
      <Field label="Amount (USD)" name="amount" form={form} hint="Up to 2 decimal places.">
        <div class="amount-row">
          <span class="prefix">$</span>
          <input
            name="amount"
            inputMode="decimal"
            value={amount}
            onInput={(event) => setAmount(event.currentTarget.value)}
            data-testid="buy-amount"
          />
          <div class="chips">
            {PRESETS.map((preset) => (
              <button
                type="button"
                key={preset}
                class={amount === preset ? "chip chip-on" : "chip"}
                onClick={() => setAmount(preset)}
              >
                ${preset}
              </button>
            ))}
          </div>
        </div>
      </Field>
      <Field label="Pay with" name="method" form={form}>
        <div class="segmented" role="radiogroup">
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
        <div class="field" data-field="paymentMethodId">
          <span class="field-label">Card</span>
          <div class="choices">
            {cards.map((pm) => (
              <label class="choice" key={pm.id}>
                <input type="radio" name="source" checked={source === pm.id} onChange={() => setSource(pm.id)} />
                {describeMethod(pm)}
                {pm.isDefault && <Badge tone="blue">Default</Badge>}
              </label>
            ))}
            <label class="choice">
              <input
                type="radio"
                name="source"
                checked={source === "new"}
                onChange={() => setSource("new")}
                data-testid="buy-new-card"
              />
              New card
            </label>
          </div>
          {source === "new" && <CardInput handle={card} invalid={cardErrors.length > 0} />}
          {source === "new" && <span class="field-hint">Saved to the team's payment methods once the payment succeeds.</span>}
          {cardErrors.map((error) => (
            <span class="field-error" role="alert" data-code={error.code} data-testid="error-card" key={error.message}>
              {error.message}
            </span>
          ))}
        </div>
      ) : (
        <div class="field" data-field="paymentMethodId">
          <span class="field-label">Bank account</span>
          {banks.length ? (
            <div class="choices">
              {banks.map((pm) => (
                <label class="choice" key={pm.id}>
                  <input type="radio" name="source" checked={source === pm.id} onChange={() => setSource(pm.id)} />
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
        </div>
      )}
      <FormErrors form={form} known={["amount", "method", "card", "stripePaymentMethodId", "paymentMethodId"]} />
      <Notice form={form} />
      <div class="row">
        <Button busy={form.busy} testid="buy-submit">
          {confirming ? "Confirming with your bank…" : `Buy ${formatUsdSafe(amount)}`}
        </Button>
      </div>
    </form>
  );
}

function formatUsdSafe(amount: string): string {
  return /^\d+(\.\d{1,2})?$/.test(amount.trim()) ? formatUsd(amount.trim()) : "credits";
}

// --------------------------------------------------------------------- promo codes

function PromoCode(props: { teamId: string; onCredits: SetCredits }): JSX.Element {
  const form = useForm();
  const [code, setCode] = useState("");
  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      const payload = await mutate<{ grant: { amount: string } | null; credits: Credits | null; errors: UserError[] }>(
        `mutation Redeem($input: RedeemPromoCodeInput!) { redeemPromoCode(input: $input) {
          grant { amount expiresAt } credits { ${CREDITS} } ${USER_ERRORS} } }`,
        { input: { teamId: props.teamId, code: code.trim() } },
      );
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
      const payload = await mutate<{ credits: Credits | null; errors: UserError[] }>(
        `mutation Limit($input: SetInvoicedSpendingLimitInput!) { setInvoicedSpendingLimit(input: $input) {
          credits { ${CREDITS} } ${USER_ERRORS} } }`,
        { input: { teamId: props.teamId, limit: value.trim() } },
      );
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
              <span class="readout-value">{formatUsd(props.credits.invoicedSpendingLimit)}</span>
              <span class="muted"> per month · {formatUsd(props.credits.invoicedRemaining)} left</span>
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

interface AutoTopUpData {
  enabled: boolean;
  threshold: string;
  amount: string;
  monthlyLimit: string;
  pausedReason: string | null;
}
const AUTO_TOP_UP = "enabled threshold amount monthlyLimit pausedReason";

function AutoTopUp(props: { teamId: string; canEdit: boolean }): JSX.Element {
  const state = useQuery<{ team: { autoTopUp: AutoTopUpData } | null }>(
    `query AutoTopUp($id: ID!) { team(id: $id) { id autoTopUp { ${AUTO_TOP_UP} } } }`,
    { id: props.teamId },
  );
  return (
    <Card title="Auto top-up" subtitle="Buy credits with the default card when the balance runs low." testid="auto-top-up">
      <Loadable state={state} skeleton={<Skeleton lines={3} />}>
        {(data) =>
          data.team ? (
            <AutoTopUpForm
              teamId={props.teamId}
              canEdit={props.canEdit}
              initial={data.team.autoTopUp}
              onSaved={(autoTopUp) => state.setData(() => ({ team: { autoTopUp } }))}
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
  if (!props.canEdit) {
    return (
      <div class="readout stack-tight">
        <div>
          {props.initial.enabled ? <Badge tone="green">On</Badge> : <Badge>Off</Badge>}
          {paused && <Badge tone="amber">Paused</Badge>}
        </div>
        {props.initial.enabled && (
          <span class="muted">
            Buys {formatUsd(props.initial.amount)} when the balance falls below {formatUsd(props.initial.threshold)}, at
            most {formatUsd(props.initial.monthlyLimit)} a month.
          </span>
        )}
        {paused && <span class="muted">{paused}</span>}
      </div>
    );
  }
  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      const payload = await mutate<{ autoTopUp: AutoTopUpData | null; errors: UserError[] }>(
        `mutation AutoTopUp($input: ConfigureAutoTopUpInput!) { configureAutoTopUp(input: $input) {
          autoTopUp { ${AUTO_TOP_UP} } ${USER_ERRORS} } }`,
        {
          input: {
            teamId: props.teamId,
            enabled,
            threshold: threshold.trim(),
            amount: amount.trim(),
            monthlyLimit: monthlyLimit.trim(),
          },
        },
      );
      if (payload.errors.length) return payload.errors;
      if (payload.autoTopUp) props.onSaved(payload.autoTopUp);
      return enabled ? "Auto top-up is on." : "Auto top-up is off.";
    });
  };
  return (
    <form class="stack" onSubmit={submit} noValidate data-testid="auto-top-up-form">
      {paused && (
        <div class="form-warning" role="status">
          Paused: {paused}
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
          <span class="toggle-track" />
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

interface Alert {
  id: string;
  kind: string;
  message: string;
  createdAt: string;
}

const ALERT = "id kind message createdAt";
const ALERT_TONE: Record<string, "amber" | "red"> = {
  INVOICED_LIMIT_80: "amber",
  CREDITS_LOW: "amber",
};

function Alerts(props: { teamId: string }): JSX.Element {
  const state = useQuery<{ team: { alerts: Alert[] } | null }>(
    `query Alerts($id: ID!) { team(id: $id) { id alerts(first: 10) { ${ALERT} } } }`,
    { id: props.teamId },
  );
  useEffect(
    () =>
      liveClient().subscribe(
        `subscription Alerts($teamId: ID!) { billingAlerts(teamId: $teamId) { ${ALERT} } }`,
        { teamId: props.teamId },
        (data) => {
          const alert = data.billingAlerts as Alert | undefined;
          if (!alert) return;
          state.setData((previous) => {
            const alerts = previous?.team?.alerts ?? [];
            if (alerts.some((known) => known.id === alert.id)) return previous;
            return { team: { alerts: [alert, ...alerts].slice(0, 10) } };
          });
        },
      ),
    [props.teamId],
  );
  return (
    <Card title="Alerts" testid="alerts">
      <Loadable state={state} skeleton={<Skeleton lines={2} />}>
        {(data) =>
          data.team?.alerts.length ? (
            <ul class="alerts">
              {data.team.alerts.map((alert) => (
                <li key={alert.id} class="alert-item">
                  <Badge tone={ALERT_TONE[alert.kind] ?? "red"}>{titleCase(alert.kind)}</Badge>
                  <div>
                    <div>{alert.message}</div>
                    <div class="muted small">{formatDate(alert.createdAt, true)}</div>
                  </div>
                </li>
              ))}
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
                <td>
                  <Badge tone={KIND_TONE[grant.kind]}>{titleCase(grant.kind)}</Badge>
                </td>
                <td>{grant.description ?? <span class="muted">—</span>}</td>
                <td class="num">
                  {formatUsd(grant.remaining)} <span class="muted">of {formatUsd(grant.amount)}</span>
                </td>
                <td>{grant.expiresAt ? formatDate(grant.expiresAt) : <span class="muted">Never</span>}</td>
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

interface Purchase {
  id: string;
  amount: string;
  method: string;
  status: string;
  failureReason: string | null;
  createdAt: string;
  paymentMethod: { type: "CARD" | "BANK_ACCOUNT"; brand: string | null; last4: string } | null;
}

const PURCHASE_TONE: Record<string, "green" | "amber" | "red" | "grey"> = {
  SUCCEEDED: "green",
  PROCESSING: "amber",
  REQUIRES_ACTION: "amber",
  FAILED: "red",
  CANCELED: "grey",
};

function Purchases(props: { teamId: string; tick: number }): JSX.Element {
  const state = useQuery<{ team: { purchases: { edges: { node: Purchase }[] } } | null }>(
    `query Purchases($id: ID!) { team(id: $id) { id purchases(first: 10) { edges { node {
      id amount method status failureReason createdAt paymentMethod { type brand last4 }
    } } } } }`,
    { id: props.teamId },
  );
  useEffect(() => {
    if (props.tick) state.reload();
  }, [props.tick]);
  useRefetchWhileProcessing(!!state.data?.team?.purchases.edges.some((edge) => edge.node.status === "PROCESSING"), state.reload);
  return (
    <Card title="Purchases" subtitle="Each purchase's invoice is on the Invoices page." testid="purchases">
      <Loadable state={state} skeleton={<Skeleton lines={3} />}>
        {(data) => {
          const purchases = data.team?.purchases.edges.map((edge) => edge.node) ?? [];
          if (!purchases.length) return <EmptyState title="No purchases yet" />;
          return (
            <table class="table">
              <thead>
                <tr>
                  <th>Date</th>
                  <th>Paid with</th>
                  <th>Status</th>
                  <th class="num">Amount</th>
                </tr>
              </thead>
              <tbody>
                {purchases.map((purchase) => (
                  <tr key={purchase.id}>
                    <td>{formatDate(purchase.createdAt, true)}</td>
                    <td>
                      {purchase.paymentMethod ? describeMethod(purchase.paymentMethod) : titleCase(purchase.method)}
                    </td>
                    <td>
                      <Badge tone={PURCHASE_TONE[purchase.status] ?? "grey"}>{titleCase(purchase.status)}</Badge>
                      {purchase.failureReason && <div class="muted small">{purchase.failureReason}</div>}
                    </td>
                    <td class="num">{formatUsd(purchase.amount)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          );
        }}
      </Loadable>
    </Card>
  );
}

