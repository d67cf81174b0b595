// API keys: the team's own keys for reading or managing billing from scripts. A new key's
// secret is shown once (only its hash is kept); revoking asks first. Admins only.

import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { graphql } from "../../gql";
import type { ApiKeysQuery, TeamApiKeyScope } from "../../gql/graphql";
import { mutate } from "../api";
import type { PageProps } from "../app";
import { Badge, Button, Card, EmptyState, Field, FormErrors, formatDate, IconCard, Loadable, Skeleton, useForm, useQuery } from "../ui";

const API_KEYS = graphql(`
  query ApiKeys($id: ID!) {
    team(id: $id) { id apiKeys { id name scopes prefix createdAt lastUsedAt expiresAt revokedAt } }
  }
`);
const CREATE_KEY = graphql(`
  mutation CreateTeamApiKey($input: CreateTeamApiKeyInput!) {
    createTeamApiKey(input: $input) { apiKey { id name } secret errors { code message field } }
  }
`);
const REVOKE_KEY = graphql(`
  mutation RevokeTeamApiKey($input: RevokeTeamApiKeyInput!) {
    revokeTeamApiKey(input: $input) { apiKey { id revokedAt } errors { code message field } }
  }
`);

type ApiKey = NonNullable<ApiKeysQuery["team"]>["apiKeys"][number];

const SCOPES: [TeamApiKeyScope, string][] = [
  ["BILLING_READ", "Read billing (like a member)"],
  ["BILLING_WRITE", "Manage billing (like an admin)"],
];

export function ApiKeysPage(props: PageProps): JSX.Element {
  if (!props.canEdit) {
    return (
      <Card title="API keys" testid="api-keys">
        <EmptyState title="Admins only" icon={<IconCard />}>
          An admin of this team creates and revokes its API keys.
        </EmptyState>
      </Card>
    );
  }
  return <ApiKeys teamId={props.teamId} />;
}

function ApiKeys(props: { teamId: string }): JSX.Element {
  const state = useQuery(API_KEYS, { id: props.teamId });
  const [secret, setSecret] = useState<{ name: string; value: string } | null>(null);
  return (
    <div class="grid">
      <div class="col-wide">
        {secret && <SecretOnce name={secret.name} secret={secret.value} onDone={() => setSecret(null)} />}
        <Card title="API keys" subtitle="For scripts that read or manage this team's billing." testid="api-keys">
          <Loadable state={state} skeleton={<Skeleton lines={3} height={18} />}>
            {(data) => {
              const keys = data.team?.apiKeys ?? [];
              if (!keys.length) {
                return (
                  <EmptyState title="No API keys" icon={<IconCard />}>
                    Create one to call the billing API from your own systems.
                  </EmptyState>
                );
              }
              return (
                <ul class="methods">
                  {keys.map((key) => (
                    <KeyRow key={key.id} teamId={props.teamId} apiKey={key} onChanged={state.reload} />
                  ))}
                </ul>
              );
            }}
          </Loadable>
        </Card>
      </div>
      <div class="col-narrow">
        <CreateKey
          teamId={props.teamId}
          onCreated={(name, value) => {
            setSecret({ name, value });
            state.reload();
          }}
        />
      </div>
    </div>
  );
}

function SecretOnce(props: { name: string; secret: string; onDone: () => void }): JSX.Element {
  const [copied, setCopied] = useState(false);
  const copy = (): void => {
    void navigator.clipboard?.writeText(props.secret).then(() => setCopied(true), () => setCopied(false));
  };
  return (
    <Card title={`Secret of "${props.name}"`} testid="api-key-secret" class="secret-card">
      <p class="form-warning" role="status">
        Copy it now: it is shown only this once. Creditline keeps only its hash.
      </p>
      <code class="secret mono" data-testid="api-key-secret-value">
        {props.secret}
      </code>
      <div class="row">
        <Button kind="secondary" small type="button" onClick={copy}>
          {copied ? "Copied" : "Copy"}
        </Button>
        <Button kind="ghost" small type="button" onClick={props.onDone} testid="api-key-secret-done">
          I have stored it
        </Button>
      </div>
    </Card>
  );
}

function KeyRow(props: { teamId: string; apiKey: ApiKey; onChanged: () => void }): JSX.Element {
  const form = useForm();
  const { apiKey } = props;
  const [confirming, setConfirming] = useState(false);
  const expired = apiKey.expiresAt !== null && Date.parse(apiKey.expiresAt) <= Date.now();
  const revoke = (): void => {
    void form.run(async () => {
      const payload = await mutate(REVOKE_KEY, { input: { teamId: props.teamId, keyId: apiKey.id } });
      setConfirming(false);
      if (!payload.errors.length) props.onChanged();
      return payload.errors;
    });
  };
  return (
    <li class="method" data-testid="api-key" data-name={apiKey.name}>
      <div class="method-main">
        <div>
          <div class="method-name">
            {apiKey.name}{" "}
            {apiKey.revokedAt ? (
              <Badge tone="grey">Revoked</Badge>
            ) : expired ? (
              <Badge tone="amber">Expired</Badge>
            ) : (
              <Badge tone="green">Active</Badge>
            )}
          </div>
          <div class="muted small">
            <span class="mono">{apiKey.prefix}…</span> ·{" "}
            {apiKey.scopes.map((scope) => (scope === "BILLING_WRITE" ? "manage billing" : "read billing")).join(", ")} · created{" "}
            {formatDate(apiKey.createdAt)} · {apiKey.lastUsedAt ? `last used ${formatDate(apiKey.lastUsedAt, true)}` : "never used"}
            {apiKey.expiresAt && ` · expires ${formatDate(apiKey.expiresAt)}`}
          </div>
        </div>
        {!apiKey.revokedAt && !confirming && (
          <div class="method-actions">
            <Button kind="danger" small type="button" onClick={() => setConfirming(true)} testid="api-key-revoke">
              Revoke
            </Button>
          </div>
        )}
      </div>
      {confirming && (
        <div class="confirm" role="alertdialog" aria-label={`Revoke ${apiKey.name}?`} data-testid="confirm-revoke">
          <span>
            Revoke <strong>{apiKey.name}</strong>? Every request with it is refused within seconds; this cannot be undone.
          </span>
          <div class="row">
            <Button kind="danger" small type="button" busy={form.busy} onClick={revoke} testid="confirm-revoke-yes">
              Revoke
            </Button>
            <Button kind="ghost" small type="button" onClick={() => setConfirming(false)}>
              Keep
            </Button>
          </div>
        </div>
      )}
      {form.errors.map((error) => (
        <div class="field-error row-error" role="alert" data-code={error.code} key={error.message}>
          {error.message}
        </div>
      ))}
    </li>
  );
}

function CreateKey(props: { teamId: string; onCreated: (name: string, secret: string) => void }): JSX.Element {
  const form = useForm();
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<TeamApiKeyScope[]>(["BILLING_READ"]);
  const [expires, setExpires] = useState("");
  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      if (!name.trim()) return [{ code: "INVALID_INPUT", message: "Name the key after what will use it.", field: "name" }];
      if (!scopes.length) return [{ code: "INVALID_INPUT", message: "Choose at least one permission.", field: "scopes" }];
      const payload = await mutate(CREATE_KEY, {
        input: {
          teamId: props.teamId,
          name: name.trim(),
          scopes,
          expiresAt: expires ? new Date(`${expires}T00:00:00Z`).toISOString() : null,
        },
      });
      if (payload.errors.length || !payload.secret) return payload.errors;
      props.onCreated(payload.apiKey?.name ?? name.trim(), payload.secret);
      setName("");
      setExpires("");
      return [];
    });
  };
  return (
    <Card title="Create an API key" testid="create-api-key">
      <form class="stack" onSubmit={submit} noValidate data-testid="api-key-form">
        <Field label="Name" name="name" form={form} required>
          <input name="name" value={name} onInput={(event) => setName(event.currentTarget.value)} placeholder="Nightly export" maxLength={100} data-testid="api-key-name" />
        </Field>
        <fieldset class="field" data-field="scopes">
          <legend class="field-label">Permissions</legend>
          {SCOPES.map(([scope, label]) => (
            <label class="checkbox" key={scope}>
              <input
                type="checkbox"
                checked={scopes.includes(scope)}
                onChange={(event) =>
                  setScopes((previous) =>
                    event.currentTarget.checked ? [...previous, scope] : previous.filter((known) => known !== scope),
                  )
                }
                data-testid={`api-key-scope-${scope}`}
              />
              {label}
            </label>
          ))}
          {form.errorFor("scopes").map((error) => (
            <span class="field-error" role="alert" data-code={error.code} data-testid="error-scopes" key={error.message}>
              {error.message}
            </span>
          ))}
        </fieldset>
        <Field label="Expires (optional)" name="expiresAt" form={form} hint="Leave empty for a key that does not expire.">
          <input type="date" name="expiresAt" value={expires} onInput={(event) => setExpires(event.currentTarget.value)} />
        </Field>
        <FormErrors form={form} known={["name", "scopes", "expiresAt"]} />
        <div class="row">
          <Button busy={form.busy} testid="api-key-submit">
            Create key
          </Button>
        </div>
      </form>
    </Card>
  );
}
