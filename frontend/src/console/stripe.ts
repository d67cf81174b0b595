// Stripe.js, loaded on demand from the URL the server names: the local emulator's copy in
// development (so card entry works with no internet), js.stripe.com in production.

export interface StripeCardElement {
  mount(target: HTMLElement): void;
  destroy(): void;
  on(event: "change", handler: (event?: { complete?: boolean; empty?: boolean; error?: { message: string } }) => void): void;
}

export interface StripeResultError {
  message?: string;
  code?: string;
  decline_code?: string;
  type?: string;
}

export interface StripeClient {
  elements(): { create(type: "card", options?: Record<string, unknown>): StripeCardElement };
  confirmCardSetup(
    clientSecret: string,
    data: { payment_method: { card: StripeCardElement; billing_details?: Record<string, unknown> } },
  ): Promise<{ error?: StripeResultError | null; setupIntent?: { payment_method: string | { id: string } } }>;
  confirmCardPayment(
    clientSecret: string,
  ): Promise<{ error?: StripeResultError | null; paymentIntent?: { id: string; status: string } }>;
}

declare global {
  interface Window {
    Stripe?: (publishableKey: string) => StripeClient;
  }
}

let loading: Promise<StripeClient> | null = null;

export function loadStripe(url: string, publishableKey: string): Promise<StripeClient> {
  if (!loading) {
    loading = new Promise<StripeClient>((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.async = true;
      script.onload = () => {
        if (window.Stripe) resolve(window.Stripe(publishableKey));
        else reject(new Error("Stripe.js loaded but did not define Stripe."));
      };
      script.onerror = () => {
        loading = null;
        script.remove();
        reject(new Error("Card entry is unavailable: Stripe.js could not be loaded."));
      };
      document.head.appendChild(script);
    });
  }
  return loading;
}

export function paymentMethodId(setupIntent: { payment_method: string | { id: string } }): string {
  const pm = setupIntent.payment_method;
  return typeof pm === "string" ? pm : pm.id;
}

/**
 * What went wrong with a card, in words, chosen by Stripe's error code (never by its
 * message text, which can be a bare "Bad request" from an emulator or a proxy).
 */
export function cardProblem(error: StripeResultError | null | undefined, step: "setup" | "authentication" = "setup"): string {
  switch (error?.code) {
    case "card_declined":
      return error.decline_code === "insufficient_funds"
        ? "The card was declined: insufficient funds. Try another card."
        : "The card was declined. Try another card or ask your bank.";
    case "expired_card":
      return "The card has expired. Use another card.";
    case "incorrect_cvc":
    case "invalid_cvc":
      return "The security code (CVC) is not right. Check it and try again.";
    case "incorrect_number":
    case "invalid_number":
      return "The card number is not right. Check it and try again.";
    case "invalid_expiry_month":
    case "invalid_expiry_year":
    case "invalid_expiry_year_past":
      return "The expiry date is not valid. Enter it as MM / YY.";
    case "incomplete_number":
    case "incomplete_cvc":
    case "incomplete_expiry":
    case "incomplete_zip":
      return "Enter the card number, expiry date and CVC.";
    case "payment_intent_authentication_failure":
    case "setup_intent_authentication_failure":
      return "The bank did not confirm the payment. Try again or use another card.";
    case "processing_error":
      return "The card could not be processed. Try again in a moment.";
    default:
      return step === "authentication"
        ? "The bank did not confirm the payment. Try again or use another card."
        : "The card details were not accepted. Check the number, expiry date (MM / YY) and CVC.";
  }
}
