// Payment: payment methods (add with Stripe.js, make default, remove) and the billing
// address with its tax id.

import type { JSX } from "preact";
import { useRef, useState } from "preact/hooks";
import { graphql } from "../../gql";
import type { BillingAddressFieldsFragment, UpdateBillingAddressInput } from "../../gql/graphql";
import { countries, countryName } from "../../lib/countries";
import { mutate } from "../api";
import type { PageProps } from "../app";
import { cardProblem, paymentMethodId } from "../stripe";
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
import { CardInput, type CardHandle, describeMethod, PAYMENT_METHODS, type PaymentMethod, SETUP_INTENT } from "./shared";
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
  const state = useQuery(PAYMENT_METHODS, { id: props.teamId });
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

const SET_DEFAULT = graphql(`
  mutation SetDefaultPaymentMethod($input: SetDefaultPaymentMethodInput!) {
    setDefaultPaymentMethod(input: $input) { paymentMethod { id } errors { code message field } }
  }
`);
const REMOVE = graphql(`
  mutation RemovePaymentMethod($input: RemovePaymentMethodInput!) {
    removePaymentMethod(input: $input) { removedPaymentMethodId errors { code message field } }
  }
`);
const ADD = graphql(`
  mutation AddPaymentMethod($input: AddPaymentMethodInput!) {
    addPaymentMethod(input: $input) { paymentMethod { id } errors { code message field } }
  }
`);

function MethodRow(props: { teamId: string; pm: PaymentMethod; canEdit: boolean; onChanged: () => void }): JSX.Element {
  const form = useForm();
  const { pm } = props;
  // Removing is asked twice: a stray click must not take the card the team pays with.
  const [confirming, setConfirming] = useState(false);
  const act = (action: "default" | "remove"): void => {
    void form.run(async () => {
      const input = { teamId: props.teamId, paymentMethodId: pm.id };
      const payload = action === "default" ? await mutate(SET_DEFAULT, { input }) : await mutate(REMOVE, { input });
      setConfirming(false);
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
            {!confirming && (
              <Button kind="danger" small type="button" busy={form.busy} onClick={() => setConfirming(true)} testid="remove-method">
                Remove
              </Button>
            )}
          </div>
        )}
      </div>
      {confirming && (
        <div class="confirm" role="alertdialog" aria-label={`Remove ${describeMethod(pm)}?`} data-testid="confirm-remove">
          <span>
            Remove <strong>{describeMethod(pm)}</strong>?{" "}
            {pm.isDefault ? "It is the default: auto top-up and invoices need another card." : "It can be added again later."}
          </span>
          <div class="row">
            <Button kind="danger" small type="button" busy={form.busy} onClick={() => act("remove")} testid="confirm-remove-yes">
              Remove
            </Button>
            <Button kind="ghost" small type="button" onClick={() => setConfirming(false)} testid="confirm-remove-no">
              Keep
            </Button>
          </div>
        </div>
      )}
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
      if (!handle) return [{ code: "CARD_INCOMPLETE", message: "Card entry is still loading.", field: "card" }];
      if (!handle.complete()) return [{ code: "CARD_INCOMPLETE", message: "Enter the card number, expiry date and CVC.", field: "card" }];
      const setup = await mutate(SETUP_INTENT, { input: { teamId: props.teamId, type: "CARD" } });
      if (setup.errors.length || !setup.clientSecret) return setup.errors;
      const confirmed = await handle.stripe
        .confirmCardSetup(setup.clientSecret, { payment_method: { card: handle.element } })
        .catch(() => ({ error: { code: "card_entry_failed" }, setupIntent: undefined }));
      if (confirmed.error || !confirmed.setupIntent) {
        return [{ code: "CARD_DECLINED", message: cardProblem(confirmed.error), field: "card" }];
      }
      const added = await mutate(ADD, {
        input: {
          teamId: props.teamId,
          stripePaymentMethodId: paymentMethodId(confirmed.setupIntent),
          makeDefault: props.first || makeDefault,
        },
      });
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

const ADDRESS_FIELDS = graphql(`
  fragment BillingAddressFields on BillingAddress {
    name organization email line1 line2 city state postalCode country taxId { type value }
  }
`);
void ADDRESS_FIELDS;
const ADDRESS = graphql(`
  query BillingAddress($id: ID!) { team(id: $id) { id billingAddress { ...BillingAddressFields } } }
`);
const UPDATE_ADDRESS = graphql(`
  mutation UpdateBillingAddress($input: UpdateBillingAddressInput!) {
    updateBillingAddress(input: $input) { billingAddress { ...BillingAddressFields } errors { code message field } }
  }
`);

type BillingAddress = BillingAddressFieldsFragment;
type TextField = "name" | "organization" | "email" | "line1" | "line2" | "city" | "state" | "postalCode";
const FIELDS: [TextField, string, boolean, string][] = [
  ["name", "Name", true, "name"],
  ["organization", "Organization", false, "organization"],
  ["email", "Billing email", false, "email"],
  ["line1", "Address line 1", true, "address-line1"],
  ["line2", "Address line 2", false, "address-line2"],
  ["city", "City", true, "address-level2"],
  ["state", "State / region", false, "address-level1"],
  ["postalCode", "Postal code", false, "postal-code"],
];
const TAX_TYPES = ["eu_vat", "gb_vat", "us_ein", "au_abn", "nz_gst", "ca_bn", "ch_vat", "in_gst", "jp_cn", "es_cif"];

function BillingAddressCard(props: PageProps): JSX.Element {
  const state = useQuery(ADDRESS, { id: props.teamId });
  return (
    <Card title="Billing address" subtitle="Printed on invoices issued from now on." testid="billing-address">
      <Loadable state={state} skeleton={<Skeleton lines={6} />}>
        {(data) =>
          props.canEdit ? (
            <AddressForm
              teamId={props.teamId}
              initial={data.team?.billingAddress ?? null}
              onSaved={(billingAddress) => state.setData(() => ({ team: { id: props.teamId, billingAddress } }))}
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
      <div>{countryName(a.country)}</div>
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
    for (const [key] of FIELDS) initial[key] = props.initial?.[key] ?? "";
    initial.country = props.initial?.country ?? "";
    initial.taxType = props.initial?.taxId?.type ?? "eu_vat";
    initial.taxValue = props.initial?.taxId?.value ?? "";
    return initial;
  });
  const set = (key: string) => (event: { currentTarget: HTMLInputElement | HTMLSelectElement }) =>
    setValues((previous) => ({ ...previous, [key]: event.currentTarget.value }));
  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      const missing = [...FIELDS.filter(([key, , required]) => required && !values[key].trim()).map(([key]) => key as string)];
      if (!values.country) missing.push("country");
      if (missing.length) return missing.map((field) => ({ code: "INVALID_INPUT" as const, message: "Required.", field }));
      const optional = (key: TextField): string | null => values[key].trim() || null;
      const input: UpdateBillingAddressInput = {
        teamId: props.teamId,
        name: values.name.trim(),
        organization: optional("organization"),
        email: optional("email"),
        line1: values.line1.trim(),
        line2: optional("line2"),
        city: values.city.trim(),
        state: optional("state"),
        postalCode: optional("postalCode"),
        country: values.country,
        taxId: values.taxValue.trim() ? { type: values.taxType, value: values.taxValue.trim() } : null,
      };
      const payload = await mutate(UPDATE_ADDRESS, { input });
      if (payload.errors.length) return payload.errors;
      if (payload.billingAddress) props.onSaved(payload.billingAddress);
      return "Billing address saved.";
    });
  };
  return (
    <form class="stack" onSubmit={submit} noValidate data-testid="address-form">
      <p class="muted small">
        Fields marked <span aria-hidden="true">*</span>
        <span class="sr-only">with an asterisk</span> are required.
      </p>
      {FIELDS.map(([key, label, required, autoComplete]) => (
        <Field key={key} label={label} name={key} form={form} required={required}>
          <input
            name={key}
            value={values[key]}
            onInput={set(key)}
            maxLength={200}
            required={required}
            aria-required={required}
            autoComplete={autoComplete}
            type={key === "email" ? "email" : "text"}
          />
        </Field>
      ))}
      <Field label="Country" name="country" form={form} required>
        <select name="country" value={values.country} onChange={set("country")} required aria-required="true" autoComplete="country">
          <option value="">Choose a country</option>
          {countries().map((country) => (
            <option key={country.code} value={country.code}>
              {country.name}
            </option>
          ))}
        </select>
      </Field>
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
      <FormErrors form={form} known={[...FIELDS.map(([key]) => key as string), "country", "taxId"]} />
      <Notice form={form} />
      <div class="row">
        <Button busy={form.busy} testid="address-submit">
          Save address
        </Button>
      </div>
    </form>
  );
}
