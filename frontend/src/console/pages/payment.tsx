// Payment: payment methods (add with Stripe.js, make default, remove) and the billing
// address with its tax id.

import type { JSX } from "preact";
import { useRef, useState } from "preact/hooks";
import { mutate, type UserError } from "../api";
import type { PageProps } from "../app";
import { paymentMethodId } from "../stripe";
import {
  Badge,
  Button,
  Card,
  EmptyState,
  Field,
  FormErrors,
  IconCard,
  Loadable,
  Notice,
  Skeleton,
  useForm,
  useQuery,
} from "../ui";
import { CardInput, type CardHandle, describeMethod, PAYMENT_METHOD, type PaymentMethod, USER_ERRORS } from "./shared";
import { AddBankAccount } from "./bank-account";

export function PaymentPage(props: PageProps): JSX.Element {
  return (
    <div class="grid">
      <div class="col-wide">
        <PaymentMethods {...props} />
      </div>
      <div class="col-narrow">
        <BillingAddressCard {...props} />
      </div>
    </div>
  );
}

// ------------------------------------------------------------------ payment methods

function PaymentMethods(props: PageProps): JSX.Element {
  const state = useQuery<{ team: { paymentMethods: PaymentMethod[] } | null }>(
    `query Methods($id: ID!) { team(id: $id) { id paymentMethods { ${PAYMENT_METHOD} } } }`,
    { id: props.teamId },
  );
  const [adding, setAdding] = useState(false);
  return (
    <Card
      title="Payment methods"
      subtitle="Cards pay for credit purchases, auto top-ups and monthly invoices."
      testid="payment-methods"
      actions={
        props.canEdit &&
        state.data &&
        !adding && (
          <Button kind="secondary" small type="button" onClick={() => setAdding(true)} testid="add-card">
            Add card
          </Button>
        )
      }
    >
      <Loadable state={state} skeleton={<Skeleton lines={3} height={20} />}>
        {(data) => {
          const methods = data.team?.paymentMethods ?? [];
          return (
            <>
              {methods.length ? (
                <ul class="methods">
                  {methods.map((pm) => (
                    <MethodRow
                      key={pm.id}
                      teamId={props.teamId}
                      pm={pm}
                      canEdit={props.canEdit}
                      onChanged={state.reload}
                    />
                  ))}
                </ul>
              ) : (
                <EmptyState title="No payment methods" icon={<IconCard />}>
                  {props.canEdit
                    ? "Add a card to buy credits and to raise the invoiced spending limit."
                    : "An admin of this team can add one."}
                </EmptyState>
              )}
              {adding && (
                <AddCard
                  teamId={props.teamId}
                  first={methods.length === 0}
                  onDone={() => {
                    setAdding(false);
                    state.reload();
                  }}
                  onCancel={() => setAdding(false)}
                />
              )}
              {props.canEdit && !adding && <AddBankAccount teamId={props.teamId} first={methods.length === 0} onAdded={state.reload} />}
            </>
          );
        }}
      </Loadable>
    </Card>
  );
}

function MethodRow(props: { teamId: string; pm: PaymentMethod; canEdit: boolean; onChanged: () => void }): JSX.Element {
  const form = useForm();
  const { pm } = props;
  const act = (action: "default" | "remove"): void => {
    void form.run(async () => {
      const payload =
        action === "default"
          ? await mutate<{ errors: UserError[] }>(
              `mutation Default($input: SetDefaultPaymentMethodInput!) { setDefaultPaymentMethod(input: $input) {
                paymentMethod { id } ${USER_ERRORS} } }`,
              { input: { teamId: props.teamId, paymentMethodId: pm.id } },
            )
          : await mutate<{ errors: UserError[] }>(
              `mutation Remove($input: RemovePaymentMethodInput!) { removePaymentMethod(input: $input) {
                removedPaymentMethodId ${USER_ERRORS} } }`,
              { input: { teamId: props.teamId, paymentMethodId: pm.id } },
            );
      if (!payload.errors.length) props.onChanged();
      return payload.errors;
    });
  };
  const expiry = pm.expMonth && pm.expYear ? `${String(pm.expMonth).padStart(2, "0")}/${String(pm.expYear).slice(-2)}` : null;
  return (
    <li class="method" data-testid="payment-method" data-last4={pm.last4}>
      <div class="method-main">
        <span class="method-icon">
          <IconCard />
        </span>
        <div>
          <div class="method-name">
            {describeMethod(pm)}{" "}
            {pm.isDefault && (
              <span data-testid="default-badge">
                <Badge tone="blue">Default</Badge>
              </span>
            )}
          </div>
          <div class="muted small">
            {pm.type === "CARD" ? (expiry ? `Expires ${expiry}` : "Card") : "Bank account (ACH)"}
          </div>
        </div>
        {props.canEdit && (
          <div class="method-actions">
            {!pm.isDefault && (
              <Button kind="ghost" small type="button" busy={form.busy} onClick={() => act("default")} testid="make-default">
                Make default
              </Button>
            )}
            <Button kind="danger" small type="button" busy={form.busy} onClick={() => act("remove")} testid="remove-method">
              Remove
            </Button>
          </div>
        )}
      </div>
      {form.errors.map((error) => (
        <div class="field-error row-error" role="alert" data-code={error.code} data-testid="payment-method-error" key={error.message}>
          {error.message}
        </div>
      ))}
    </li>
  );
}

function AddCard(props: { teamId: string; first: boolean; onDone: () => void; onCancel: () => void }): JSX.Element {
  const form = useForm();
  const card = useRef<CardHandle | null>(null);
  const [makeDefault, setMakeDefault] = useState(false);
  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      const handle = card.current;
      if (!handle) return [{ code: "INVALID_INPUT", message: "Card entry is still loading.", field: "card" }];
      const setup = await mutate<{ clientSecret: string | null; errors: UserError[] }>(
        `mutation Setup($input: CreateSetupIntentInput!) { createSetupIntent(input: $input) { clientSecret setupIntentId ${USER_ERRORS} } }`,
        { input: { teamId: props.teamId, type: "CARD" } },
      );
      if (setup.errors.length || !setup.clientSecret) return setup.errors;
      const confirmed = await handle.stripe.confirmCardSetup(setup.clientSecret, { payment_method: { card: handle.element } });
      if (confirmed.error || !confirmed.setupIntent) {
        return [{ code: "PAYMENT_FAILED", message: confirmed.error?.message ?? "The card was not accepted.", field: "card" }];
      }
      const added = await mutate<{ paymentMethod: { id: string } | null; errors: UserError[] }>(
        `mutation Add($input: AddPaymentMethodInput!) { addPaymentMethod(input: $input) { paymentMethod { id } ${USER_ERRORS} } }`,
        {
          input: {
            teamId: props.teamId,
            stripePaymentMethodId: paymentMethodId(confirmed.setupIntent),
            makeDefault: props.first || makeDefault,
          },
        },
      );
      if (added.errors.length) return added.errors;
      props.onDone();
      return [];
    });
  };
  const cardErrors = form.errorFor("card", "stripePaymentMethodId");
  return (
    <form class="stack add-card" onSubmit={submit} noValidate data-testid="add-card-form">
      <div class="field" data-field="card">
        <span class="field-label">Card details</span>
        <CardInput handle={card} invalid={cardErrors.length > 0} />
        {cardErrors.map((error) => (
          <span class="field-error" role="alert" data-code={error.code} data-testid="error-card" key={error.message}>
            {error.message}
          </span>
        ))}
      </div>
      {!props.first && (
        <label class="checkbox">
          <input type="checkbox" checked={makeDefault} onChange={(event) => setMakeDefault(event.currentTarget.checked)} />
          Make this the default payment method
        </label>
      )}
      <FormErrors form={form} known={["card", "stripePaymentMethodId", "makeDefault"]} />
      <div class="row">
        <Button busy={form.busy} testid="save-card">
          Save card
        </Button>
        <Button kind="ghost" type="button" onClick={props.onCancel}>
          Cancel
        </Button>
      </div>
    </form>
  );
}

// ------------------------------------------------------------------ billing address

interface BillingAddress {
  name: string;
  organization: string | null;
  email: string | null;
  line1: string;
  line2: string | null;
  city: string;
  state: string | null;
  postalCode: string | null;
  country: string;
  taxId: { type: string; value: string } | null;
}

const ADDRESS = "name organization email line1 line2 city state postalCode country taxId { type value }";
const FIELDS: [keyof BillingAddress, string, boolean][] = [
  ["name", "Name", true],
  ["organization", "Organization", false],
  ["email", "Billing email", false],
  ["line1", "Address line 1", true],
  ["line2", "Address line 2", false],
  ["city", "City", true],
  ["state", "State / region", false],
  ["postalCode", "Postal code", false],
  ["country", "Country (2 letters)", true],
];
const TAX_TYPES = ["eu_vat", "gb_vat", "us_ein", "au_abn", "nz_gst", "ca_bn", "ch_vat", "in_gst", "jp_cn", "es_cif"];

function BillingAddressCard(props: PageProps): JSX.Element {
  const state = useQuery<{ team: { billingAddress: BillingAddress | null } | null }>(
    `query Address($id: ID!) { team(id: $id) { id billingAddress { ${ADDRESS} } } }`,
    { id: props.teamId },
  );
  return (
    <Card title="Billing address" subtitle="Printed on invoices issued from now on." testid="billing-address">
      <Loadable state={state} skeleton={<Skeleton lines={6} />}>
        {(data) =>
          props.canEdit ? (
            <AddressForm
              teamId={props.teamId}
              initial={data.team?.billingAddress ?? null}
              onSaved={(billingAddress) => state.setData(() => ({ team: { billingAddress } }))}
            />
          ) : data.team?.billingAddress ? (
            <AddressView address={data.team.billingAddress} />
          ) : (
            <EmptyState title="No billing address">An admin of this team can add one.</EmptyState>
          )
        }
      </Loadable>
    </Card>
  );
}

function AddressView(props: { address: BillingAddress }): JSX.Element {
  const a = props.address;
  return (
    <address class="address" data-testid="address-view">
      <strong>{a.name}</strong>
      {a.organization && <div>{a.organization}</div>}
      <div>{a.line1}</div>
      {a.line2 && <div>{a.line2}</div>}
      <div>{[a.postalCode, a.city, a.state].filter(Boolean).join(" ")}</div>
      <div>{a.country}</div>
      {a.email && <div class="muted">{a.email}</div>}
      {a.taxId && (
        <div class="muted">
          {a.taxId.type.toUpperCase().replace("_", " ")}: {a.taxId.value}
        </div>
      )}
    </address>
  );
}

function AddressForm(props: {
  teamId: string;
  initial: BillingAddress | null;
  onSaved: (address: BillingAddress) => void;
}): JSX.Element {
  const form = useForm();
  const [values, setValues] = useState<Record<string, string>>(() => {
    const initial: Record<string, string> = {};
    for (const [key] of FIELDS) initial[key] = (props.initial?.[key] as string | null) ?? "";
    initial.taxType = props.initial?.taxId?.type ?? "eu_vat";
    initial.taxValue = props.initial?.taxId?.value ?? "";
    return initial;
  });
  const set = (key: string) => (event: { currentTarget: HTMLInputElement | HTMLSelectElement }) =>
    setValues((previous) => ({ ...previous, [key]: event.currentTarget.value }));
  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      const input: Record<string, unknown> = { teamId: props.teamId };
      for (const [key, , required] of FIELDS) {
        const value = values[key].trim();
        input[key] = value || (required ? "" : null);
      }
      input.country = String(input.country).toUpperCase();
      input.taxId = values.taxValue.trim() ? { type: values.taxType, value: values.taxValue.trim() } : null;
      const payload = await mutate<{ billingAddress: BillingAddress | null; errors: UserError[] }>(
        `mutation Address($input: UpdateBillingAddressInput!) { updateBillingAddress(input: $input) {
          billingAddress { ${ADDRESS} } ${USER_ERRORS} } }`,
        { input },
      );
      if (payload.errors.length) return payload.errors;
      if (payload.billingAddress) props.onSaved(payload.billingAddress);
      return "Billing address saved.";
    });
  };
  return (
    <form class="stack" onSubmit={submit} noValidate data-testid="address-form">
      {FIELDS.map(([key, label]) => (
        <Field key={key} label={label} name={key} form={form}>
          <input name={key} value={values[key]} onInput={set(key)} maxLength={key === "country" ? 2 : 200} />
        </Field>
      ))}
      <Field label="Tax id" name="taxId" form={form} hint="Optional: VAT, GST or EIN as registered.">
        <div class="row">
          <select value={values.taxType} onChange={set("taxType")} class="tax-type" aria-label="Tax id type">
            {TAX_TYPES.map((type) => (
              <option key={type} value={type}>
                {type.toUpperCase().replace("_", " ")}
              </option>
            ))}
          </select>
          <input name="taxId.value" value={values.taxValue} onInput={set("taxValue")} aria-label="Tax id value" />
        </div>
      </Field>
      <FormErrors form={form} known={[...FIELDS.map(([key]) => key as string), "taxId"]} />
      <Notice form={form} />
      <div class="row">
        <Button busy={form.busy} testid="address-submit">
          Save address
        </Button>
      </div>
    </form>
  );
}
