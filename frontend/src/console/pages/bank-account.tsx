// Adding a US bank account (ACH) with Stripe.js: routing and account number go to Stripe in a
// SetupIntent (instant verification in test mode and on the development emulator); our
// server only receives the resulting payment method id. Mounted on the Payment page and in
// the Buy form's bank transfer path. Also: refetching while a bank transfer is processing.

import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { graphql } from "../../gql";
import { mutate, type UserError } from "../api";
import { useConfig } from "../app";
import { loadStripe, paymentMethodId, type StripeClient } from "../stripe";
import { Button, Field, FormErrors, useForm } from "../ui";
import { SETUP_INTENT } from "./shared";

const ADD_BANK_ACCOUNT = graphql(`
  mutation AddBankAccount($input: AddPaymentMethodInput!) {
    addPaymentMethod(input: $input) { paymentMethod { id } errors { code message field } }
  }
`);

interface StripeError {
  message?: string;
  code?: string;
  param?: string;
}

interface BankSetupIntent {
  status: string;
  payment_method: string | { id: string };
  next_action?: { type?: string; verify_with_microdeposits?: { hosted_verification_url?: string } } | null;
}

/** Stripe.js's bank account call (absent from the card-only client type). */
interface BankStripe {
  confirmUsBankAccountSetup(
    clientSecret: string,
    data: {
      payment_method: {
        us_bank_account: { routing_number: string; account_number: string; account_holder_type: string };
        billing_details: { name: string };
      };
    },
  ): Promise<{ error?: StripeError | null; setupIntent?: BankSetupIntent }>;
}

function bankStripe(stripe: StripeClient): BankStripe | null {
  const candidate = stripe as unknown as Partial<BankStripe>;
  return typeof candidate.confirmUsBankAccountSetup === "function" ? (candidate as BankStripe) : null;
}

// Stripe's parameter names, as our form's fields.
const PARAM_FIELDS: Record<string, string> = {
  "us_bank_account[routing_number]": "routingNumber",
  "us_bank_account[account_number]": "accountNumber",
  "us_bank_account[account_holder_type]": "holderType",
  "billing_details[name]": "holderName",
};
// Shown next to their inputs; the rest (bankAccount, the server's) above the buttons.
const FIELDS = ["holderName", "routingNumber", "accountNumber", "holderType"];

/** Checks what Stripe would refuse anyway, so the common slips answer at once. */
function localErrors(values: { name: string; routing: string; account: string }): UserError[] {
  const errors: UserError[] = [];
  if (!values.name.trim()) errors.push({ code: "INVALID_INPUT", message: "Enter the account holder's name.", field: "holderName" });
  if (!/^[0-9]{9}$/.test(values.routing)) {
    errors.push({ code: "INVALID_INPUT", message: "A routing number has 9 digits.", field: "routingNumber" });
  }
  if (!/^[0-9]{4,17}$/.test(values.account)) {
    errors.push({ code: "INVALID_INPUT", message: "An account number has 4 to 17 digits.", field: "accountNumber" });
  }
  return errors;
}

export function AddBankAccount(props: {
  teamId: string;
  /** No method on file yet: this one becomes the default. */
  first: boolean;
  onAdded: (paymentMethodId: string) => void;
}): JSX.Element {
  const [open, setOpen] = useState(false);
  if (!open) {
    return (
      <div class="row">
        <Button kind="secondary" small type="button" onClick={() => setOpen(true)} testid="add-bank-account">
          Add bank account
        </Button>
      </div>
    );
  }
  return (
    <BankAccountForm
      {...props}
      onAdded={(id) => {
        setOpen(false);
        props.onAdded(id);
      }}
      onCancel={() => setOpen(false)}
    />
  );
}

function BankAccountForm(props: {
  teamId: string;
  first: boolean;
  onAdded: (paymentMethodId: string) => void;
  onCancel: () => void;
}): JSX.Element {
  const form = useForm();
  const config = useConfig();
  const [name, setName] = useState("");
  const [routing, setRouting] = useState("");
  const [account, setAccount] = useState("");
  const [holderType, setHolderType] = useState<"company" | "individual">("company");
  const testMode = config.environment !== "production" || config.stripePublishableKey.startsWith("pk_test_");

  const submit = (): void => {
    const values = { name: name.trim(), routing: routing.replace(/\s/g, ""), account: account.replace(/\s/g, "") };
    void form.run(async () => {
      const invalid = localErrors(values);
      if (invalid.length) return invalid;
      const setup = await mutate(SETUP_INTENT, { input: { teamId: props.teamId, type: "BANK_ACCOUNT" } });
      if (setup.errors.length || !setup.clientSecret) return setup.errors;
      const stripe = bankStripe(await loadStripe(config.stripeJsUrl, config.stripePublishableKey));
      if (!stripe) return [{ code: "INVALID_INPUT", message: "Bank accounts are unavailable: Stripe.js lacks them.", field: "bankAccount" }];
      const confirmed = await stripe.confirmUsBankAccountSetup(setup.clientSecret, {
        payment_method: {
          us_bank_account: { routing_number: values.routing, account_number: values.account, account_holder_type: holderType },
          billing_details: { name: values.name },
        },
      });
      if (confirmed.error || !confirmed.setupIntent) {
        const error = confirmed.error;
        const field = (error?.param && PARAM_FIELDS[error.param]) || "bankAccount";
        return [{ code: "INVALID_INPUT", message: error?.message ?? "The bank account was not accepted.", field }];
      }
      const intent = confirmed.setupIntent;
      if (intent.status === "requires_action" && intent.next_action?.type === "verify_with_microdeposits") {
        // Live mode without instant verification: Stripe sends two small deposits; the
        // account is put on file when Stripe reports the setup succeeded (webhook).
        const link = intent.next_action.verify_with_microdeposits?.hosted_verification_url;
        return `Stripe is sending two small deposits to this account; confirm them${link ? ` at ${link}` : " from Stripe's email"} to finish adding it.`;
      }
      if (intent.status !== "succeeded") {
        return [{ code: "INVALID_INPUT", message: `The bank account could not be verified (${intent.status}).`, field: "bankAccount" }];
      }
      const added = await mutate(ADD_BANK_ACCOUNT, {
        input: { teamId: props.teamId, stripePaymentMethodId: paymentMethodId(intent), makeDefault: props.first },
      });
      if (added.errors.length || !added.paymentMethod) return added.errors;
      props.onAdded(added.paymentMethod.id);
      return [];
    });
  };

  const fillTest = (accountNumber: string): void => {
    setName((current) => current || "Test Company");
    setRouting("110000000");
    setAccount(accountNumber);
  };

  return (
    // A group, not a <form>: it also sits inside the Buy form, and forms must not nest. Enter
    // in one of its inputs saves the bank account instead of submitting the outer form.
    <div
      class="stack bank-account-form"
      role="group"
      aria-label="Add a bank account"
      data-testid="bank-account-form"
      onKeyDown={(event) => {
        if (event.key === "Enter" && event.target instanceof HTMLInputElement) {
          event.preventDefault();
          submit();
        }
      }}
    >
      <Field label="Account holder" name="holderName" form={form}>
        <input value={name} onInput={(event) => setName(event.currentTarget.value)} maxLength={200} autoComplete="name" data-testid="bank-holder" />
      </Field>
      <div class="row bank-numbers">
        <Field label="Routing number" name="routingNumber" form={form}>
          <input
            value={routing}
            onInput={(event) => setRouting(event.currentTarget.value)}
            inputMode="numeric"
            maxLength={11}
            autoComplete="off"
            data-testid="bank-routing"
          />
        </Field>
        <Field label="Account number" name="accountNumber" form={form}>
          <input
            value={account}
            onInput={(event) => setAccount(event.currentTarget.value)}
            inputMode="numeric"
            maxLength={20}
            autoComplete="off"
            data-testid="bank-account-number"
          />
        </Field>
      </div>
      <Field label="Account type" name="holderType" form={form}>
        <select value={holderType} onChange={(event) => setHolderType(event.currentTarget.value === "individual" ? "individual" : "company")}>
          <option value="company">Business</option>
          <option value="individual">Personal</option>
        </select>
      </Field>
      <span class="field-hint">
        By saving, you authorise debits from this account for the purchases you make (ACH). Details go to Stripe, never to
        our servers.
      </span>
      {testMode && (
        <div class="row field-hint" data-testid="bank-test-accounts">
          Test mode:
          <button type="button" class="link-button" onClick={() => fillTest("000123456789")} data-testid="bank-test-succeeds">
            account that pays
          </button>
          <button type="button" class="link-button" onClick={() => fillTest("000111111113")} data-testid="bank-test-fails">
            account that fails (closed)
          </button>
        </div>
      )}
      <FormErrors form={form} known={FIELDS} testid="bank-account-error" />
      {form.notice && (
        <div class="form-notice" role="status" data-testid="bank-account-notice">
          {form.notice}
        </div>
      )}
      <div class="row">
        <Button busy={form.busy} type="button" onClick={submit} testid="save-bank-account">
          Save bank account
        </Button>
        <Button kind="ghost" type="button" onClick={props.onCancel}>
          Cancel
        </Button>
      </div>
    </div>
  );
}

/** Refetches every `intervalMs` while `active` (a bank transfer is processing), so the
 * purchase shows SUCCEEDED or FAILED when it settles; a failed debit changes no balance,
 * so the balance subscription alone would never tell. */
export function useRefetchWhileProcessing(active: boolean, reload: () => void, intervalMs = 3000): void {
  useEffect(() => {
    if (!active) return;
    const timer = window.setInterval(reload, intervalMs);
    return () => window.clearInterval(timer);
  }, [active, reload, intervalMs]);
}
