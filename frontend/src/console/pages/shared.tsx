// Pieces shared by several pages: GraphQL selections, the Stripe card input.

import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { graphql } from "../../gql";
import type { CreditsFieldsFragment, PaymentMethodFieldsFragment } from "../../gql/graphql";
import { useConfig } from "../app";
import { loadStripe, type StripeCardElement, type StripeClient } from "../stripe";

export const CREDITS_FIELDS = graphql(`
  fragment CreditsFields on Credits {
    total free promotional prepaid invoicedSpendingLimit invoicedThisMonth invoicedRemaining
    status updatedAt grants { id kind amount remaining description grantedAt expiresAt }
  }
`);

export type Credits = CreditsFieldsFragment;
export type Grant = Credits["grants"][number];

export const PAYMENT_METHOD_FIELDS = graphql(`
  fragment PaymentMethodFields on PaymentMethod { id type brand last4 expMonth expYear isDefault createdAt }
`);

export type PaymentMethod = PaymentMethodFieldsFragment;

/** The team's payment methods: the Payment page and the Buy form's picker read the same. */
export const PAYMENT_METHODS = graphql(`
  query PaymentMethods($id: ID!) { team(id: $id) { id paymentMethods { ...PaymentMethodFields } } }
`);

export function describeMethod(pm: Pick<PaymentMethod, "type" | "brand" | "last4">): string {
  const brand = pm.brand ? pm.brand.charAt(0).toUpperCase() + pm.brand.slice(1) : pm.type === "CARD" ? "Card" : "Bank account";
  return `${brand} •••• ${pm.last4}`;
}

/** Sets up a card with Stripe.js before it is saved or charged. */
export const SETUP_INTENT = graphql(`
  mutation CreateSetupIntent($input: CreateSetupIntentInput!) {
    createSetupIntent(input: $input) { clientSecret setupIntentId errors { code message field } }
  }
`);

export interface CardHandle {
  stripe: StripeClient;
  element: StripeCardElement;
  /** Stripe.js reports every field filled in and valid (checked before any request). */
  complete: () => boolean;
}

/**
 * The Stripe.js card element. Fills `handle` once mounted; card details never touch our
 * server (Stripe.js sends them to Stripe, we receive a payment method id).
 */
export function CardInput(props: { handle: { current: CardHandle | null }; invalid?: boolean }): JSX.Element {
  const config = useConfig();
  const target = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<"loading" | "ready" | "failed">("loading");
  const [failure, setFailure] = useState("");
  useEffect(() => {
    let element: StripeCardElement | null = null;
    let cancelled = false;
    loadStripe(config.stripeJsUrl, config.stripePublishableKey)
      .then((stripe) => {
        if (cancelled || !target.current) return;
        // Stripe.js says `complete` on each change; a change without it (the emulator's
        // copy) at least proves something was typed. Untouched is never complete.
        let touched = false;
        let complete: boolean | null = null;
        element = stripe.elements().create("card", { hidePostalCode: false });
        element.on("change", (event) => {
          touched = true;
          complete = typeof event?.complete === "boolean" ? event.complete : null;
        });
        element.mount(target.current);
        props.handle.current = { stripe, element, complete: () => touched && complete !== false };
        setState("ready");
      })
      .catch((caught: Error) => {
        setFailure(caught.message);
        setState("failed");
      });
    return () => {
      cancelled = true;
      props.handle.current = null;
      element?.destroy();
    };
  }, []);
  return (
    <div class={`card-input${props.invalid ? " card-input-invalid" : ""}`} data-testid="card-input" data-state={state}>
      <div ref={target} class="card-input-mount" />
      {state === "loading" && <span class="muted">Loading secure card entry…</span>}
      {state === "failed" && <span class="field-error">{failure}</span>}
    </div>
  );
}
