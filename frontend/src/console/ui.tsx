// Shared pieces: data loading with designed loading/empty/error states, and forms whose
// API errors appear next to the field they name.

import type { ComponentChildren, JSX } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { formatUsd, formatUsdExact } from "../lib/money";
import { ApiError, asUserErrors, type Document, gql, type UserError } from "./api";

// ---------------------------------------------------------------------------- data

export interface QueryState<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  reload: () => void;
  setData: (update: (previous: T | null) => T | null) => void;
}

export function useQuery<T, V>(
  query: Document<T, V>,
  variables: V,
  /** Decides between a fresh answer and what is on screen (default: the answer). */
  merge: (answer: T, shown: T | null) => T = (answer) => answer,
): QueryState<T> {
  const [data, setDataState] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const key = JSON.stringify(variables);
  const last = useRef(key);
  useEffect(() => {
    let cancelled = false;
    setLoading(true);
    if (last.current !== key) {
      setDataState(null); // another team: never show the previous team's numbers
      last.current = key;
    }
    gql(query, variables)
      .then((result) => {
        if (cancelled) return;
        setDataState((shown) => merge(result, shown));
        setError(null);
      })
      .catch((caught: unknown) => {
        if (cancelled) return;
        setError(caught instanceof ApiError ? caught : new ApiError(asUserErrors(caught)[0].message, "INTERNAL"));
      })
      .finally(() => !cancelled && setLoading(false));
    return () => {
      cancelled = true;
    };
  }, [query, key, tick]);
  const reload = useCallback(() => setTick((value) => value + 1), []);
  const setData = useCallback((update: (previous: T | null) => T | null) => setDataState(update), []);
  return { data, error, loading, reload, setData };
}

/** Renders a section: skeleton while loading, error with retry, else the children. */
export function Loadable<T>(props: {
  state: QueryState<T>;
  skeleton?: ComponentChildren;
  children: (data: T) => ComponentChildren;
}): JSX.Element {
  const { state } = props;
  if (state.data) return <>{props.children(state.data)}</>;
  if (state.error) return <ErrorState error={state.error} retry={state.reload} />;
  return <>{props.skeleton ?? <Skeleton lines={3} />}</>;
}

export function Skeleton(props: { lines?: number; height?: number }): JSX.Element {
  const lines = Array.from({ length: props.lines ?? 3 }, (_, index) => index);
  return (
    <div class="skeleton" aria-busy="true" aria-label="Loading" data-testid="loading">
      {lines.map((index) => (
        <div
          key={index}
          class="skeleton-line"
          style={{ width: `${90 - ((index * 23) % 45)}%`, height: `${props.height ?? 14}px` }}
        />
      ))}
    </div>
  );
}

const ERROR_TITLES: Partial<Record<ApiError["code"], string>> = {
  NOT_FOUND: "Not found",
  FORBIDDEN: "Not allowed",
  NETWORK: "Offline",
  RATE_LIMITED: "Slow down",
};

export function ErrorState(props: { error: ApiError; retry?: () => void }): JSX.Element {
  // Retrying cannot make a missing team appear, nor grant access.
  const retryable = props.error.code !== "NOT_FOUND" && props.error.code !== "FORBIDDEN";
  return (
    <div class="state state-error" role="alert" data-code={props.error.code} data-testid="error-state">
      <div class="state-icon">
        <IconAlert />
      </div>
      <div>
        <div class="state-title">{ERROR_TITLES[props.error.code] ?? "Something went wrong"}</div>
        <div class="state-text">{props.error.message}</div>
      </div>
      {props.retry && retryable && (
        <button type="button" class="btn btn-small" onClick={props.retry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function EmptyState(props: { title: string; children?: ComponentChildren; icon?: JSX.Element }): JSX.Element {
  return (
    <div class="state state-empty" data-testid="empty-state">
      <div class="state-icon">{props.icon ?? <IconInbox />}</div>
      <div>
        <div class="state-title">{props.title}</div>
        {props.children && <div class="state-text">{props.children}</div>}
      </div>
    </div>
  );
}

// --------------------------------------------------------------------------- forms

/** Error fields are the mutation's input names ("amount", "taxId.value"); "input." is ignored. */
function normalise(field: string | null | undefined): string | null {
  return field ? field.replace(/^input\./, "") : null;
}

export interface FormState {
  errors: UserError[];
  busy: boolean;
  notice: string | null;
  /** Errors naming one of `fields` (or their first path segment). */
  errorFor: (...fields: string[]) => UserError[];
  /** Errors naming no field of this form (shown once, at the form's foot). */
  unclaimed: (known: string[]) => UserError[];
  run: (action: () => Promise<UserError[] | string | void>) => Promise<boolean>;
  setErrors: (errors: UserError[]) => void;
  setNotice: (notice: string | null) => void;
}

export function useForm(): FormState {
  const [errors, setErrors] = useState<UserError[]>([]);
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const matches = (error: UserError, fields: string[]): boolean => {
    const field = normalise(error.field);
    if (!field) return false;
    return fields.some((name) => name === field || field.split(".")[0] === name);
  };
  return {
    errors,
    busy,
    notice,
    errorFor: (...fields) => errors.filter((error) => matches(error, fields)),
    unclaimed: (known) => errors.filter((error) => !matches(error, known)),
    setErrors,
    setNotice,
    run: async (action) => {
      setBusy(true);
      setErrors([]);
      setNotice(null);
      try {
        const result = await action();
        if (Array.isArray(result)) {
          setErrors(result);
          return result.length === 0;
        }
        if (typeof result === "string") setNotice(result);
        return true;
      } catch (caught) {
        setErrors(asUserErrors(caught));
        return false;
      } finally {
        setBusy(false);
      }
    },
  };
}

export function Field(props: {
  label: string;
  name: string;
  form: FormState;
  hint?: string;
  also?: string[];
  /** Marked with an asterisk (the form says what it means). */
  required?: boolean;
  children: ComponentChildren;
}): JSX.Element {
  const errors = props.form.errorFor(props.name, ...(props.also ?? []));
  return (
    <label class={errors.length ? "field field-invalid" : "field"} data-field={props.name}>
      <span class="field-label">
        {props.label}
        {props.required && (
          <span class="required" aria-hidden="true" data-testid={`required-${props.name}`}>
            {" "}
            *
          </span>
        )}
      </span>
      {props.children}
      {errors.map((error) => (
        <span class="field-error" role="alert" data-code={error.code} data-testid={`error-${props.name}`} key={error.message}>
          {error.message}
        </span>
      ))}
      {!errors.length && props.hint && <span class="field-hint">{props.hint}</span>}
    </label>
  );
}

export function FormErrors(props: { form: FormState; known: string[]; testid?: string }): JSX.Element | null {
  const errors = props.form.unclaimed(props.known);
  if (!errors.length) return null;
  return (
    <div class="form-error" role="alert" data-testid={props.testid ?? "form-error"}>
      <IconAlert />
      <div>
        {errors.map((error) => (
          <div key={error.message} data-code={error.code}>
            {error.message}
          </div>
        ))}
      </div>
    </div>
  );
}

export function Notice(props: { form: FormState }): JSX.Element | null {
  if (!props.form.notice) return null;
  return (
    <div class="form-notice" role="status" data-testid="form-notice">
      <IconCheck /> {props.form.notice}
    </div>
  );
}

export function Button(props: {
  busy?: boolean;
  kind?: "primary" | "secondary" | "danger" | "ghost";
  small?: boolean;
  type?: "submit" | "button";
  onClick?: () => void;
  disabled?: boolean;
  testid?: string;
  children: ComponentChildren;
}): JSX.Element {
  const kind = props.kind ?? "primary";
  return (
    <button
      type={props.type ?? "submit"}
      class={`btn btn-${kind}${props.small ? " btn-small" : ""}`}
      disabled={props.busy || props.disabled}
      aria-busy={props.busy ? "true" : "false"}
      onClick={props.onClick}
      data-testid={props.testid}
    >
      {props.busy && <span class="spinner" aria-hidden="true" />}
      {props.children}
    </button>
  );
}

// ---------------------------------------------------------------------------- bits

export function Card(props: {
  title?: string;
  subtitle?: ComponentChildren;
  actions?: ComponentChildren;
  class?: string;
  testid?: string;
  children: ComponentChildren;
}): JSX.Element {
  return (
    <section class={`card ${props.class ?? ""}`} data-testid={props.testid}>
      {(props.title || props.actions) && (
        <header class="card-head">
          <div>
            {props.title && <h2>{props.title}</h2>}
            {props.subtitle && <p class="card-subtitle">{props.subtitle}</p>}
          </div>
          {props.actions && <div class="card-actions">{props.actions}</div>}
        </header>
      )}
      {props.children}
    </section>
  );
}

export function Badge(props: { tone?: "green" | "amber" | "red" | "blue" | "grey"; children: ComponentChildren }): JSX.Element {
  return <span class={`badge badge-${props.tone ?? "grey"}`}>{props.children}</span>;
}

export { formatDate, formatPeriod } from "../lib/dates";

/** An amount in dollars and cents; the exact value (to 1e-8) on hover. */
export function Money(props: { value: string | null | undefined; testid?: string; class?: string }): JSX.Element {
  const exact = formatUsdExact(props.value);
  return (
    <span class={props.class} title={props.value ? `${exact} exactly` : undefined} data-testid={props.testid} data-exact={props.value ?? undefined}>
      {formatUsd(props.value)}
    </span>
  );
}

export function titleCase(value: string): string {
  return value
    .toLowerCase()
    .split("_")
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(" ");
}

export function newKey(prefix: string): string {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `${prefix}-${Date.now().toString(36)}-${random[0].toString(36)}${random[1].toString(36)}`;
}

// --------------------------------------------------------------------------- icons

const icon = (path: JSX.Element): JSX.Element => (
  <svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" stroke-width="1.8"
    stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">
    {path}
  </svg>
);
export const IconAlert = (): JSX.Element =>
  icon(<><circle cx="12" cy="12" r="9" /><path d="M12 7v6M12 16.5v.5" /></>);
export const IconCheck = (): JSX.Element => icon(<path d="M5 12.5l4.5 4.5L19 7.5" />);
export const IconInbox = (): JSX.Element =>
  icon(<><path d="M4 13l2.5-7h11L20 13v5H4z" /><path d="M4 13h4.5l1 2h5l1-2H20" /></>);
export const IconClock = (): JSX.Element => icon(<><circle cx="12" cy="12" r="9" /><path d="M12 7v5l3 2" /></>);
export const IconCard = (): JSX.Element =>
  icon(<><rect x="3" y="6" width="18" height="13" rx="2" /><path d="M3 10h18M7 15h3" /></>);
export const IconWallet = (): JSX.Element =>
  icon(<><path d="M4 7h14a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2H4z" /><path d="M4 7l11-3v3M16 13.5h.5" /></>);
export const IconFile = (): JSX.Element =>
  icon(<><path d="M7 3h7l4 4v14H7z" /><path d="M14 3v4h4M10 12h5M10 16h5" /></>);
export const IconUsers = (): JSX.Element =>
  icon(<><circle cx="9" cy="8" r="3.5" /><path d="M3 20c0-3.5 2.7-6 6-6s6 2.5 6 6M16 4.5a3.5 3.5 0 0 1 0 7M21 20c0-3-1.8-5.3-4.5-5.9" /></>);
export const IconBell = (): JSX.Element =>
  icon(<><path d="M6 16V11a6 6 0 0 1 12 0v5l1.5 2h-15z" /><path d="M10 20.5h4" /></>);
export const IconKey = (): JSX.Element =>
  icon(<><circle cx="8" cy="15" r="4" /><path d="M11 12l8-8M16 7l2 2M14 9l2 2" /></>);
