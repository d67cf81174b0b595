// <creditline-balance>: an embeddable live balance for one team.
//
//   <script type="module" src="https://billing.example.com/balance-widget.js"></script>
//   <creditline-balance team-id="..." token="..." endpoint="https://billing.example.com/graphql">
//   </creditline-balance>
//
// It subscribes to creditsUpdated over graphql-transport-ws (the token goes in the
// connection_init payload) and re-renders on every change. A `token` property can be set
// from script instead of the attribute; `credits` events carry each new state.

import { LiveClient, type LiveStatus, websocketUrl } from "../lib/live";
import { formatUsd, formatUsdExact, percentOf, toUnits } from "../lib/money";

interface Credits {
  total: string;
  free: string;
  promotional: string;
  prepaid: string;
  invoicedSpendingLimit: string;
  invoicedThisMonth: string;
  status: string;
  updatedAt: string;
}

const SUBSCRIPTION = `subscription Balance($teamId: ID!) { creditsUpdated(teamId: $teamId) {
  total free promotional prepaid invoicedSpendingLimit invoicedThisMonth status updatedAt } }`;

const STYLE = `
:host { display: inline-block; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111827; }
.box { border: 1px solid #e5e7eb; border-radius: 12px; padding: 14px 16px; min-width: 220px; background: #fff;
  box-shadow: 0 1px 2px rgb(0 0 0 / 4%); }
.label { font-size: 12px; color: #6b7280; display: flex; justify-content: space-between; gap: 8px; }
.total { font-size: 28px; font-weight: 650; letter-spacing: -0.02em; margin: 2px 0 6px; font-variant-numeric: tabular-nums; }
.parts { display: flex; gap: 12px; font-size: 12px; color: #4b5563; }
.bar { height: 4px; background: #f3f4f6; border-radius: 2px; margin-top: 10px; overflow: hidden; }
.fill { height: 100%; background: #111827; }
.dot { display: inline-block; width: 7px; height: 7px; border-radius: 50%; background: #d1d5db; margin-right: 4px; }
.live .dot { background: #16a34a; }
.error { color: #b91c1c; font-size: 13px; }
.exhausted .total { color: #b91c1c; }
`;

export class CreditlineBalance extends HTMLElement {
  static observedAttributes = ["team-id", "token", "endpoint"];
  private client: LiveClient | null = null;
  private stop: (() => void) | null = null;
  private credits: Credits | null = null;
  private status: LiveStatus = "connecting";
  private problem: string | null = null;
  private tokenValue: string | null = null;
  private readonly root: ShadowRoot;

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
  }

  get token(): string | null {
    return this.tokenValue ?? this.getAttribute("token");
  }

  set token(value: string | null) {
    this.tokenValue = value;
    this.restart();
  }

  connectedCallback(): void {
    this.restart();
  }

  disconnectedCallback(): void {
    this.teardown();
  }

  attributeChangedCallback(): void {
    if (this.isConnected) this.restart();
  }

  private teardown(): void {
    this.stop?.();
    this.client?.dispose();
    this.stop = null;
    this.client = null;
  }

  private restart(): void {
    this.teardown();
    const teamId = this.getAttribute("team-id");
    this.credits = null;
    this.problem = null;
    if (!teamId || !this.token) {
      this.problem = "Set team-id and token.";
      this.render();
      return;
    }
    const endpoint = this.getAttribute("endpoint") ?? "/graphql";
    this.client = new LiveClient({
      url: websocketUrl(endpoint),
      token: () => this.token,
      onStatus: (status) => {
        this.status = status;
        if (status === "unauthorized") this.problem = "The token was refused.";
        this.render();
      },
    });
    this.stop = this.client.subscribe(
      SUBSCRIPTION,
      { teamId },
      (data) => {
        this.credits = data.creditsUpdated as Credits;
        this.problem = null;
        this.render();
        this.dispatchEvent(new CustomEvent("credits", { detail: this.credits }));
      },
      (errors) => {
        // Words by error code; the server's text is for developers.
        const code = errors[0]?.extensions?.code;
        this.problem =
          code === "NOT_FOUND"
            ? "This team was not found."
            : code === "FORBIDDEN"
              ? "This token cannot read this team's balance."
              : code === "UNAUTHENTICATED"
                ? "The token was refused."
                : "The balance is unavailable right now.";
        this.render();
      },
    );
    this.render();
  }

  private render(): void {
    const c = this.credits;
    // A subscription that failed is not live, whatever the socket's state.
    const live = this.status === "live" && !this.problem;
    const state = this.problem ? "off" : live ? "live" : this.status === "offline" ? "reconnecting" : this.status === "unauthorized" ? "off" : "connecting";
    let body: string;
    if (this.problem) {
      body = `<div class="error" part="error">${escapeHtml(this.problem)}</div>`;
    } else if (!c) {
      body = `<div class="total">…</div>`;
    } else {
      const limited = toUnits(c.invoicedSpendingLimit) > 0n;
      body = `
        <div class="total" part="total" title="${formatUsdExact(c.total)} exactly">${formatUsd(c.total)}</div>
        <div class="parts"><span>Prepaid ${formatUsd(c.prepaid)}</span><span>Promo ${formatUsd(c.promotional)}</span><span>Free ${formatUsd(c.free)}</span></div>
        ${limited ? `<div class="bar" title="Invoiced ${formatUsd(c.invoicedThisMonth)} of ${formatUsd(c.invoicedSpendingLimit)}"><div class="fill" style="width:${percentOf(c.invoicedThisMonth, c.invoicedSpendingLimit)}%"></div></div>` : ""}`;
    }
    const exhausted = c && c.status !== "ACTIVE" ? " exhausted" : "";
    this.root.innerHTML = `<style>${STYLE}</style>
      <div class="box${live ? " live" : ""}${exhausted}" part="box">
        <div class="label"><span>Credits</span><span class="state" data-state="${state}"><span class="dot"></span>${state}</span></div>
        ${body}
      </div>`;
  }
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

if (!customElements.get("creditline-balance")) customElements.define("creditline-balance", CreditlineBalance);
