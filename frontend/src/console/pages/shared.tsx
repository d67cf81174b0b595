// Pieces shared by several pages: GraphQL selections, the Stripe card input.

import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { useConfig } from "../app";
import { loadStripe, type StripeCardElement, type StripeClient } from "../stripe";

export const USER_ERRORS = "errors { code message field }";

export const CREDITS = `total free promotional prepaid invoicedSpendingLimit invoicedThisMonth invoicedRemaining
  status updatedAt grants { id kind amount remaining description grantedAt expiresAt }`;

export interface Grant {
  id: string;
  kind: "FREE" | "PROMOTIONAL" | "PREPAID";
  amount: string;
  remaining: string;
  description: string | null;
  grantedAt: string;
  expiresAt: string | null;
}

export interface Credits {
  total: string;
  free: string;
  promotional: string;
  prepaid: string;
  invoicedSpendingLimit: string;
  invoicedThisMonth: string;
  invoicedRemaining: string;
  status: "ACTIVE" | "CREDITS_EXHAUSTED" | "INVOICED_LIMIT_REACHED";
  updatedAt: string;
  grants: Grant[];
}

export const PAYMENT_METHOD = "id type brand last4 expMonth expYear isDefault createdAt";

export interface PaymentMethod {
  id: string;
  type: "CARD" | "BANK_ACCOUNT";
  brand: string | null;
  last4: string;
  expMonth: number | null;
  expYear: number | null;
  isDefault: boolean;
  createdAt: string;
}

export function describeMethod(pm: Pick<PaymentMethod, "type" | "brand" | "last4">): string {
  const brand = pm.brand ? pm.brand.charAt(0).toUpperCase() + pm.brand.slice(1) : pm.type === "CARD" ? "Card" : "Bank account";
  return `${brand} •••• ${pm.last4}`;
}

export interface CardHandle {
  stripe: StripeClient;
  element: StripeCardElement;
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
        element = stripe.elements().create("card", { hidePostalCode: false });
        element.mount(target.current);
        props.handle.current = { stripe, element };
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
