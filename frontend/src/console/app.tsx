// The console shell: configuration, sign-in, the team switcher and the four billing pages.

import type { JSX } from "preact";
import { createContext } from "preact";
import { useContext, useEffect, useState } from "preact/hooks";
import type { LiveStatus } from "../lib/live";
import { formatUsd, formatUsdExact } from "../lib/money";
import { graphql } from "../gql";
import type { ViewerQuery } from "../gql/graphql";
import { ApiError, gql, liveClient, mutate, onLiveStatus, resetLive, setEndpoint, subscribe } from "./api";
import { ActivityPage } from "./pages/activity";
import { ApiKeysPage } from "./pages/api-keys";
import { IconChart, IconList } from "./chart";
import { CreditsPage } from "./pages/credits";
import { InvoicesPage } from "./pages/invoices";
import { MembersPage } from "./pages/members";
import { NotificationsPage } from "./pages/notifications";
import { PaymentPage } from "./pages/payment";
import { StatementPage } from "./pages/statement";
import { UsagePage } from "./pages/usage";
import { href, navigate, onLinkClick, type Page, useRoute } from "./router";
import {
  acceptHandoff,
  type ConsoleConfig,
  devSignIn,
  getToken,
  lastTeam,
  loadConfig,
  onTokenChange,
  rememberTeam,
  setToken,
} from "./session";
import {
  Badge,
  Button,
  ErrorState,
  Field,
  FormErrors,
  IconBell,
  IconCard,
  IconClock,
  IconFile,
  IconKey,
  IconUsers,
  IconWallet,
  Loadable,
  Skeleton,
  useForm,
  useQuery,
} from "./ui";

export const ConfigContext = createContext<ConsoleConfig | null>(null);

export function useConfig(): ConsoleConfig {
  return useContext(ConfigContext) as ConsoleConfig;
}

export interface PageProps {
  teamId: string;
  /** ADMIN of this team: sees edit controls. MEMBERs (and operators) read only. */
  canEdit: boolean;
}

export function App(): JSX.Element {
  const [config, setConfig] = useState<ConsoleConfig | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  const [token, setTokenState] = useState<string | null>(getToken);
  // A token from a link, held until the person confirms the account it names.
  const [offered, setOffered] = useState<{ token: string; email: string } | null>(null);

  useEffect(() => {
    loadConfig()
      .then((loaded) => {
        setEndpoint(loaded.graphqlPath);
        setConfig(loaded);
      })
      .catch((caught: Error) => setFailure(caught.message));
  }, []);
  useEffect(
    () => (config ? acceptHandoff(config, (offeredToken, email) => setOffered({ token: offeredToken, email })) : undefined),
    [config],
  );
  useEffect(
    () =>
      onTokenChange(() => {
        resetLive();
        setTokenState(getToken());
      }),
    [],
  );

  if (failure) {
    return (
      <div class="center-page">
        <ErrorState error={new ApiError(failure, "NETWORK")} retry={() => location.reload()} />
      </div>
    );
  }
  if (!config) {
    return (
      <div class="center-page" aria-busy="true">
        <div class="brand brand-large">
          <Logo /> Creditline
        </div>
        <span class="spinner spinner-dark" />
      </div>
    );
  }
  if (offered) {
    return (
      <ConfirmSignIn
        email={offered.email}
        signedIn={token !== null}
        onConfirm={() => {
          setOffered(null);
          setToken(offered.token);
        }}
        onCancel={() => setOffered(null)}
      />
    );
  }
  return (
    <ConfigContext.Provider value={config}>
      {token ? <Console key={token} /> : config.devSignIn ? <SignIn /> : <Handoff />}
    </ConfigContext.Provider>
  );
}

function ConfirmSignIn(props: {
  email: string;
  signedIn: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}): JSX.Element {
  return (
    <div class="center-page">
      <div class="card signin" data-testid="confirm-sign-in">
        <div class="brand brand-large">
          <Logo /> Creditline
        </div>
        <h1>Continue as {props.email}?</h1>
        <p class="muted">
          The link you opened signs in as <strong data-testid="confirm-email">{props.email}</strong>
          {props.signedIn ? ", not the account you are signed in to" : ""}. Continue only if this
          is your own account.
        </p>
        <div class="row">
          <Button type="button" onClick={props.onConfirm} testid="confirm-continue">
            Continue as {props.email}
          </Button>
          <Button kind="ghost" type="button" onClick={props.onCancel} testid="confirm-cancel">
            {props.signedIn ? "Stay signed in as before" : "Cancel"}
          </Button>
        </div>
      </div>
    </div>
  );
}

function Logo(): JSX.Element {
  return (
    <svg viewBox="0 0 32 32" width="28" height="28" aria-hidden="true">
      <rect width="32" height="32" rx="8" fill="currentColor" />
      <path d="M21 11.5a6.5 6.5 0 1 0 0 9" stroke="#fff" stroke-width="3" fill="none" stroke-linecap="round" />
    </svg>
  );
}

function SignIn(): JSX.Element {
  const form = useForm();
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [expired] = useState(() => {
    const flag = sessionStorage.getItem("creditline.expired");
    sessionStorage.removeItem("creditline.expired");
    return flag;
  });
  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      const result = await devSignIn(email, name);
      if (result.error) return [{ code: "INVALID_INPUT", ...result.error }];
      setToken(result.token ?? null);
      return [];
    });
  };
  return (
    <div class="center-page">
      <form class="card signin" onSubmit={submit} data-testid="sign-in" noValidate>
        <div class="brand brand-large">
          <Logo /> Creditline
        </div>
        <h1>Sign in to the billing console</h1>
        <p class="muted">
          Development sign-in: any email gets a token. A new email gets its own team.
        </p>
        {expired && (
          <div class="form-warning" role="status" data-testid="session-ended">
            Your session ended. Sign in again.
          </div>
        )}
        <Field label="Email" name="email" form={form}>
          <input
            type="email"
            name="email"
            autoComplete="email"
            value={email}
            onInput={(event) => setEmail(event.currentTarget.value)}
            placeholder="you@example.com"
            required
          />
        </Field>
        <Field label="Name (optional)" name="name" form={form}>
          <input name="name" value={name} onInput={(event) => setName(event.currentTarget.value)} />
        </Field>
        <FormErrors form={form} known={["email", "name"]} />
        <Button busy={form.busy} testid="sign-in-submit">
          Sign in
        </Button>
      </form>
    </div>
  );
}

function Handoff(): JSX.Element {
  return (
    <div class="center-page">
      <div class="card signin" data-testid="handoff">
        <div class="brand brand-large">
          <Logo /> Creditline
        </div>
        <h1>Open billing from your account</h1>
        <p class="muted">
          This console is opened from the platform you are signed in to, which hands it your session.
          Go back to your account and choose Billing.
        </p>
      </div>
    </div>
  );
}

const VIEWER = graphql(`
  query Viewer {
    viewer {
      id email name isOperator
      memberships { role team { id name } }
      invitations { id teamId teamName role invitedBy }
    }
  }
`);
/** Whether the team in the URL exists for this viewer (members, or operators for any). */
const TEAM = graphql(`query TeamName($id: ID!) { team(id: $id) { id name } }`);
const ACCEPT = graphql(`
  mutation AcceptInvitation($input: AcceptInvitationInput!) { acceptInvitation(input: $input) { errors { code message field } } }
`);
const DECLINE = graphql(`
  mutation DeclineInvitation($input: DeclineInvitationInput!) { declineInvitation(input: $input) { errors { code message field } } }
`);
const CREATE_TEAM = graphql(`
  mutation CreateTeam($input: CreateTeamInput!) { createTeam(input: $input) { team { id } errors { code message field } } }
`);
const TOTAL_LIVE = graphql(`subscription SidebarTotal($teamId: ID!) { creditsUpdated(teamId: $teamId) { total } }`);

type Viewer = ViewerQuery["viewer"];
type Invitation = Viewer["invitations"][number];

type TeamCheck = { state: "none" } | { state: "checking" } | { state: "found"; name: string } | { state: "missing"; error: ApiError };

/**
 * The team in the URL: a membership answers at once; anything else (an operator looking
 * at any team, a stale bookmark, a typo) is asked of the server, and a team that is not
 * there gets one clear page instead of every section failing on its own.
 */
function useTeamCheck(teamId: string | null, viewer: Viewer | null): TeamCheck {
  const membership = viewer?.memberships.find((m) => m.team.id === teamId);
  const [asked, setAsked] = useState<{ id: string; check: TeamCheck } | null>(null);
  useEffect(() => {
    if (!teamId || !viewer || membership) return;
    let cancelled = false;
    gql(TEAM, { id: teamId })
      .then((data) => {
        if (cancelled) return;
        const check: TeamCheck = data.team
          ? { state: "found", name: data.team.name }
          : { state: "missing", error: new ApiError(NOT_FOUND_TEXT, "NOT_FOUND") };
        setAsked({ id: teamId, check });
      })
      .catch((caught: unknown) => {
        if (cancelled) return;
        const error = caught instanceof ApiError ? caught : new ApiError(NOT_FOUND_TEXT, "NOT_FOUND");
        const missing = error.code === "NOT_FOUND" || error.code === "FORBIDDEN" || error.code === "BAD_REQUEST";
        setAsked({ id: teamId, check: { state: "missing", error: missing ? new ApiError(NOT_FOUND_TEXT, "NOT_FOUND") : error } });
      });
    return () => {
      cancelled = true;
    };
  }, [teamId, viewer, membership]);
  if (!teamId) return { state: "none" };
  if (membership) return { state: "found", name: membership.team.name };
  if (!viewer) return { state: "checking" };
  return asked?.id === teamId ? asked.check : { state: "checking" };
}

const NOT_FOUND_TEXT = "This team does not exist, or you are not a member of it.";

function Console(): JSX.Element {
  const viewer = useQuery(VIEWER, {});
  const route = useRoute();
  const [live, setLive] = useState<LiveStatus>(() => liveClient().status);
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => onLiveStatus(setLive), []);
  useEffect(() => setMenuOpen(false), [route.teamId, route.page]);

  const memberships = viewer.data?.viewer.memberships ?? [];
  const team = useTeamCheck(route.teamId, viewer.data?.viewer ?? null);
  useEffect(() => {
    if (!viewer.data || route.teamId) return;
    const remembered = lastTeam();
    const target = memberships.find((m) => m.team.id === remembered) ?? memberships[0];
    if (target) navigate(href(target.team.id, route.page), true);
  }, [viewer.data, route.teamId]);
  useEffect(() => {
    if (route.teamId && team.state === "found") rememberTeam(route.teamId);
  }, [route.teamId, team.state]);

  if (viewer.error && !viewer.data) {
    return (
      <div class="center-page">
        <ErrorState error={viewer.error} retry={viewer.reload} />
      </div>
    );
  }
  const membership = memberships.find((m) => m.team.id === route.teamId);
  const canEdit = membership?.role === "ADMIN";
  const teamId = team.state === "found" ? route.teamId : null;
  return (
    <div class="layout">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="sidebar" data-open={menuOpen ? "true" : "false"}>
        <div class="sidebar-top">
          <div class="brand">
            <Logo /> Creditline
          </div>
          <button
            type="button"
            class="menu-toggle btn btn-ghost btn-small"
            aria-expanded={menuOpen}
            aria-controls="console-menu"
            onClick={() => setMenuOpen((open) => !open)}
            data-testid="menu-toggle"
          >
            {menuOpen ? "Close" : "Menu"}
          </button>
        </div>
        <Loadable state={viewer} skeleton={<Skeleton lines={1} height={34} />}>
          {(data) => (
            <TeamSwitcher teams={data.viewer.memberships} current={route.teamId} page={route.page} onCreated={viewer.reload} />
          )}
        </Loadable>
        {teamId && <SidebarBalance key={teamId} teamId={teamId} />}
        <div class="sidebar-menu" id="console-menu">
          <nav class="nav" aria-label="Billing">
            {teamId &&
              NAV.filter(([, , , adminOnly]) => canEdit || !adminOnly).map(([page, label, Icon]) => (
                <a
                  key={page}
                  href={href(teamId, page)}
                  class={route.page === page ? "nav-link active" : "nav-link"}
                  aria-current={route.page === page ? "page" : undefined}
                  onClick={(event) => {
                    setMenuOpen(false);
                    onLinkClick(event, href(teamId, page));
                  }}
                  data-testid={`nav-${page}`}
                >
                  <Icon /> {label}
                </a>
              ))}
          </nav>
          <div class="sidebar-foot">
            <a class="nav-link" href="/graphql" target="_blank" rel="noopener">
              GraphQL IDE <span aria-hidden="true">↗</span>
              <span class="sr-only">(opens in a new tab)</span>
            </a>
            {viewer.data && (
              <div class="whoami">
                <div class="whoami-email" data-testid="viewer-email">
                  {viewer.data.viewer.email}
                </div>
                {viewer.data.viewer.isOperator && <Badge tone="blue">Operator</Badge>}
              </div>
            )}
            <button type="button" class="btn btn-ghost btn-small" onClick={() => setToken(null)} data-testid="sign-out">
              Sign out
            </button>
          </div>
        </div>
      </header>
      <main class="main" id="main">
        {viewer.data && viewer.data.viewer.invitations.length > 0 && (
          <Invitations invitations={viewer.data.viewer.invitations} onAnswered={viewer.reload} />
        )}
        {team.state === "missing" ? (
          <div class="stack-page" data-testid="team-missing">
            <header class="page-head">
              <h1>Team not found</h1>
            </header>
            <ErrorState error={team.error} retry={team.error.code === "NOT_FOUND" ? undefined : () => location.reload()} />
            {memberships[0] && (
              <p>
                <a href={href(memberships[0].team.id, "credits")} onClick={(event) => onLinkClick(event, href(memberships[0].team.id, "credits"))}>
                  Go to {memberships[0].team.name}
                </a>
              </p>
            )}
          </div>
        ) : teamId && team.state === "found" ? (
          <>
            <header class="page-head">
              <div>
                <div class="eyebrow">{team.name}</div>
                <h1>{NAV.find(([page]) => page === route.page)?.[1]}</h1>
              </div>
              <div class="page-head-side">
                <LiveBadge status={live} />
                {canEdit ? (
                  <Badge tone="green">Admin</Badge>
                ) : (
                  <span data-testid="read-only">
                    <Badge tone="grey">Read-only</Badge>
                  </span>
                )}
              </div>
            </header>
            <PageView page={route.page} teamId={teamId} canEdit={canEdit} />
          </>
        ) : viewer.data && memberships.length === 0 && !route.teamId ? (
          <div class="state state-empty">You are not a member of any team yet.</div>
        ) : (
          <Skeleton lines={6} />
        )}
      </main>
    </div>
  );
}

/** Invitations to the viewer's email: nobody joins a team without accepting. */
function Invitations(props: { invitations: Invitation[]; onAnswered: () => void }): JSX.Element {
  const form = useForm();
  const answer = (invitation: Invitation, accept: boolean): void => {
    void form.run(async () => {
      const input = { invitationId: invitation.id };
      const payload = accept ? await mutate(ACCEPT, { input }) : await mutate(DECLINE, { input });
      if (payload.errors.length) return payload.errors;
      props.onAnswered();
      if (accept) navigate(href(invitation.teamId, "credits"));
      return undefined;
    });
  };
  return (
    <div class="card" data-testid="invitations">
      <h2>Invitations</h2>
      <FormErrors form={form} known={[]} />
      <ul class="members">
        {props.invitations.map((invitation) => (
          <li class="member" key={invitation.id} data-testid="invitation" data-team={invitation.teamId}>
            <div class="member-main">
              <div class="member-who">
                <div>{invitation.teamName}</div>
                <div class="muted small">
                  {invitation.role === "ADMIN" ? "Admin" : "Member"}
                  {invitation.invitedBy ? `, invited by ${invitation.invitedBy}` : ""}
                </div>
              </div>
              <div class="member-actions">
                <Button small type="button" busy={form.busy} onClick={() => answer(invitation, true)} testid="invitation-accept">
                  Accept
                </Button>
                <Button kind="ghost" small type="button" busy={form.busy} onClick={() => answer(invitation, false)} testid="invitation-decline">
                  Decline
                </Button>
              </div>
            </div>
          </li>
        ))}
      </ul>
    </div>
  );
}

/** Pages in the menu; the last two are for admins (members are not shown them). */
const NAV: [Page, string, () => JSX.Element, boolean][] = [
  ["credits", "Credits", IconWallet, false],
  ["payment", "Payment", IconCard, false],
  ["usage", "Usage", IconChart, false],
  ["statement", "Statement", IconList, false],
  ["invoices", "Invoices", IconFile, false],
  ["members", "Members", IconUsers, false],
  ["notifications", "Notifications", IconBell, false],
  ["activity", "Activity", IconClock, true],
  ["api-keys", "API keys", IconKey, true],
];

function PageView(props: { page: Page } & PageProps): JSX.Element {
  const { page, ...rest } = props;
  switch (page) {
    case "payment":
      return <PaymentPage key={rest.teamId} {...rest} />;
    case "invoices":
      return <InvoicesPage key={rest.teamId} {...rest} />;
    case "members":
      return <MembersPage key={rest.teamId} {...rest} />;
    case "notifications":
      return <NotificationsPage key={rest.teamId} {...rest} />;
    case "activity":
      return <ActivityPage key={rest.teamId} {...rest} />;
    case "api-keys":
      return <ApiKeysPage key={rest.teamId} {...rest} />;
    case "usage":
      return <UsagePage key={rest.teamId} {...rest} />;
    case "statement":
      return <StatementPage key={rest.teamId} {...rest} />;
    default:
      return <CreditsPage key={rest.teamId} {...rest} />;
  }
}

function LiveBadge(props: { status: LiveStatus }): JSX.Element {
  const labels: Record<LiveStatus, string> = {
    connecting: "Connecting…",
    live: "Live",
    offline: "Reconnecting…",
    unauthorized: "Live updates off",
  };
  return (
    <span class={`live live-${props.status}`} data-testid="live-status" data-status={props.status}>
      <span class="live-dot" /> {labels[props.status]}
    </span>
  );
}

function TeamSwitcher(props: {
  teams: Viewer["memberships"];
  current: string | null;
  page: Page;
  onCreated: () => void;
}): JSX.Element {
  const [creating, setCreating] = useState(false);
  const [name, setName] = useState("");
  const form = useForm();
  const create = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      const payload = await mutate(CREATE_TEAM, { input: { name } });
      if (payload.team) {
        setCreating(false);
        setName("");
        props.onCreated();
        navigate(href(payload.team.id, "credits"));
      }
      return payload.errors;
    });
  };
  return (
    <div class="team-switcher">
      <label class="field">
        <span class="field-label">Team</span>
        <select
          data-testid="team-switcher"
          value={props.teams.some((m) => m.team.id === props.current) ? (props.current ?? "") : ""}
          onChange={(event) => navigate(href(event.currentTarget.value, props.page))}
        >
          {!props.teams.some((m) => m.team.id === props.current) && (
            <option value="" disabled>
              {props.teams.length ? "Choose a team" : "No teams yet"}
            </option>
          )}
          {props.teams.map((m) => (
            <option key={m.team.id} value={m.team.id}>
              {m.team.name}
              {m.role === "MEMBER" ? " (member)" : ""}
            </option>
          ))}
        </select>
      </label>
      {creating ? (
        <form class="stack-tight" onSubmit={create}>
          <Field label="New team name" name="name" form={form}>
            <input value={name} onInput={(event) => setName(event.currentTarget.value)} autoFocus />
          </Field>
          <FormErrors form={form} known={["name"]} />
          <div class="row">
            <Button small busy={form.busy}>
              Create
            </Button>
            <Button small kind="ghost" type="button" onClick={() => setCreating(false)}>
              Cancel
            </Button>
          </div>
        </form>
      ) : (
        <button type="button" class="link-button" onClick={() => setCreating(true)}>
          + New team
        </button>
      )}
    </div>
  );
}

/** The team's total on every page, from the creditsUpdated subscription (keeps "Live" true). */
function SidebarBalance(props: { teamId: string }): JSX.Element {
  const [total, setTotal] = useState<string | null>(null);
  const [denied, setDenied] = useState(false);
  useEffect(
    () =>
      subscribe(
        TOTAL_LIVE,
        { teamId: props.teamId },
        (data) => setTotal(data.creditsUpdated.total),
        () => setDenied(true),
      ),
    [props.teamId],
  );
  if (denied) return <></>;
  return (
    <div class="sidebar-balance" data-testid="sidebar-balance">
      <span class="muted small">Balance</span>
      <strong title={total === null ? undefined : `${formatUsdExact(total)} exactly`}>
        {total === null ? "…" : formatUsd(total)}
      </strong>
    </div>
  );
}
