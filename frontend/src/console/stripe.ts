// Stripe.js, loaded on demand from the URL the server names: the local emulator's copy in
// development (so card entry works with no internet), js.stripe.com in production.

export interface StripeCardElement {
  mount(target: HTMLElement): void;
  destroy(): void;
  on(event: "change", handler: (event?: { error?: { message: string } }) => void): void;
}

interface StripeResultError {
  message?: string;
  code?: string;
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
