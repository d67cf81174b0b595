// Members: who is on the team and their role; admins invite, change roles and remove.

import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { graphql } from "../../gql";
import type { MembersQuery, Role } from "../../gql/graphql";
import { mutate } from "../api";
import type { PageProps } from "../app";
import {
  Badge,
  Button,
  Card,
  EmptyState,
  Field,
  FormErrors,
  formatDate,
  IconUsers,
  Loadable,
  Notice,
  Skeleton,
  useForm,
  useQuery,
} from "../ui";

const MEMBERS = graphql(`query Members($id: ID!) { team(id: $id) { id members { email name role pending } } }`);
const SET_ROLE = graphql(`
  mutation SetTeamMemberRole($input: SetTeamMemberRoleInput!) {
    setTeamMemberRole(input: $input) { member { email role } errors { code message field } }
  }
`);
const REMOVE_MEMBER = graphql(`
  mutation RemoveTeamMember($input: RemoveTeamMemberInput!) { removeTeamMember(input: $input) { errors { code message field } } }
`);
const INVITE = graphql(`
  mutation AddTeamMember($input: AddTeamMemberInput!) {
    addTeamMember(input: $input) { member { email role } errors { code message field } }
  }
`);

const TEAM_INVITATIONS = graphql(`
  query TeamInvitations($id: ID!) { team(id: $id) { id invitations { id email role invitedBy createdAt } } }
`);
const CANCEL_INVITATION = graphql(`
  mutation CancelInvitation($input: CancelInvitationInput!) { cancelInvitation(input: $input) { errors { code message field } } }
`);
const LEAVE_TEAM = graphql(`
  mutation LeaveTeam($input: LeaveTeamInput!) { leaveTeam(input: $input) { errors { code message field } } }
`);

type Member = NonNullable<MembersQuery["team"]>["members"][number];

export function MembersPage(props: PageProps): JSX.Element {
  const state = useQuery(MEMBERS, { id: props.teamId });
  const [invited, setInvited] = useState(0);
  return (
    <div class="grid">
      <div class="col-wide">
        <Card title="Members" subtitle="Admins manage billing and members; members read billing." testid="members">
          <Loadable state={state} skeleton={<Skeleton lines={4} height={18} />}>
            {(data) =>
              data.team?.members.length ? (
                <ul class="members">
                  {data.team.members.map((member) => (
                    <MemberRow
                      key={member.email}
                      teamId={props.teamId}
                      member={member}
                      canEdit={props.canEdit}
                      onChanged={state.reload}
                    />
                  ))}
                </ul>
              ) : (
                <EmptyState title="No members" icon={<IconUsers />} />
              )
            }
          </Loadable>
        </Card>
      </div>
      <div class="col-narrow">
        {props.canEdit && (
          <Invite
            teamId={props.teamId}
            onInvited={() => {
              state.reload();
              setInvited((value) => value + 1);
            }}
          />
        )}
        {props.canEdit && <TeamInvitations teamId={props.teamId} changes={invited} />}
        <Leave teamId={props.teamId} />
      </div>
    </div>
  );
}

function MemberRow(props: { teamId: string; member: Member; canEdit: boolean; onChanged: () => void }): JSX.Element {
  const form = useForm();
  const { member } = props;
  const setRole = (role: Role): void => {
    void form.run(async () => {
      const payload = await mutate(SET_ROLE, { input: { teamId: props.teamId, email: member.email, role } });
      props.onChanged();
      return payload.errors;
    });
  };
  const remove = (): void => {
    void form.run(async () => {
      const payload = await mutate(REMOVE_MEMBER, { input: { teamId: props.teamId, email: member.email } });
      if (!payload.errors.length) props.onChanged();
      return payload.errors;
    });
  };
  const initials = (member.name ?? member.email)
    .split(/[\s@.]+/)
    .slice(0, 2)
    .map((part) => part.charAt(0).toUpperCase())
    .join("");
  return (
    <li class="member" data-testid="member-row" data-email={member.email}>
      <div class="member-main">
        <span class="avatar">{initials}</span>
        <div class="member-who">
          <div>
            {member.name ?? member.email} {member.pending && <Badge tone="amber">Invited</Badge>}
          </div>
          {member.name && <div class="muted small">{member.email}</div>}
        </div>
        {props.canEdit ? (
          <div class="member-actions">
            <select
              value={member.role}
              aria-label={`Role of ${member.email}`}
              disabled={form.busy}
              onChange={(event) => setRole(event.currentTarget.value as Role)}
              data-testid="member-role"
            >
              <option value="ADMIN">Admin</option>
              <option value="MEMBER">Member</option>
            </select>
            <Button kind="ghost" small type="button" busy={form.busy} onClick={remove} testid="member-remove">
              Remove
            </Button>
          </div>
        ) : (
          <Badge tone={member.role === "ADMIN" ? "green" : "grey"}>{member.role === "ADMIN" ? "Admin" : "Member"}</Badge>
        )}
      </div>
      {form.errors.map((error) => (
        <div class="field-error row-error" role="alert" data-code={error.code} data-testid="member-error" key={error.message}>
          {error.message}
        </div>
      ))}
    </li>
  );
}

function Invite(props: { teamId: string; onInvited: () => void }): JSX.Element {
  const form = useForm();
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("MEMBER");
  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      const payload = await mutate(INVITE, { input: { teamId: props.teamId, email: email.trim(), role } });
      if (payload.errors.length) return payload.errors;
      setEmail("");
      props.onInvited();
      return `Invited ${payload.member?.email ?? email}. They join once they accept the invitation.`;
    });
  };
  return (
    <Card title="Invite a member" testid="invite">
      <form class="stack" onSubmit={submit} noValidate data-testid="invite-form">
        <Field label="Email" name="email" form={form}>
          <input
            type="email"
            name="email"
            value={email}
            onInput={(event) => setEmail(event.currentTarget.value)}
            placeholder="colleague@example.com"
            data-testid="invite-email"
          />
        </Field>
        <Field label="Role" name="role" form={form}>
          <select value={role} onChange={(event) => setRole(event.currentTarget.value as Role)}>
            <option value="MEMBER">Member: reads billing</option>
            <option value="ADMIN">Admin: manages billing and members</option>
          </select>
        </Field>
        <FormErrors form={form} known={["email", "role"]} />
        <Notice form={form} />
        <div class="row">
          <Button busy={form.busy} testid="invite-submit">
            Send invite
          </Button>
        </div>
      </form>
    </Card>
  );
}

/** Open invitations to this team (admins): withdraw one that was sent by mistake. */
function TeamInvitations(props: { teamId: string; changes: number }): JSX.Element {
  const state = useQuery(TEAM_INVITATIONS, { id: props.teamId });
  useEffect(() => {
    if (props.changes) state.reload();
  }, [props.changes]);
  const form = useForm();
  const cancel = (invitationId: string): void => {
    void form.run(async () => {
      const payload = await mutate(CANCEL_INVITATION, { input: { teamId: props.teamId, invitationId } });
      if (!payload.errors.length) state.reload();
      return payload.errors;
    });
  };
  return (
    <Card title="Open invitations" testid="team-invitations">
      <Loadable state={state} skeleton={<Skeleton lines={2} />}>
        {(data) =>
          data.team?.invitations.length ? (
            <ul class="members">
              {data.team.invitations.map((invitation) => (
                <li class="member" key={invitation.id} data-testid="team-invitation" data-email={invitation.email}>
                  <div class="member-main">
                    <div class="member-who">
                      <div>{invitation.email}</div>
                      <div class="muted small">
                        {invitation.role === "ADMIN" ? "Admin" : "Member"} · sent {formatDate(invitation.createdAt)}
                        {invitation.invitedBy ? ` by ${invitation.invitedBy}` : ""}
                      </div>
                    </div>
                    <div class="member-actions">
                      <Button kind="ghost" small type="button" busy={form.busy} onClick={() => cancel(invitation.id)} testid="invitation-cancel">
                        Withdraw
                      </Button>
                    </div>
                  </div>
                </li>
              ))}
            </ul>
          ) : (
            <EmptyState title="No open invitations" />
          )
        }
      </Loadable>
      <FormErrors form={form} known={[]} />
    </Card>
  );
}

/** Leave the team (asked first); the server refuses it for the last admin, in words. */
function Leave(props: { teamId: string }): JSX.Element {
  const form = useForm();
  const [confirming, setConfirming] = useState(false);
  const leave = (): void => {
    void form.run(async () => {
      const payload = await mutate(LEAVE_TEAM, { input: { teamId: props.teamId } });
      if (payload.errors.length) {
        setConfirming(false);
        return payload.errors;
      }
      location.assign("/"); // the viewer (and the team list) starts over without this team
      return [];
    });
  };
  return (
    <Card title="Leave this team" testid="leave-team">
      <p class="muted small">You lose access to its billing at once. An admin can invite you again.</p>
      {confirming ? (
        <div class="row">
          <Button kind="danger" small type="button" busy={form.busy} onClick={leave} testid="leave-confirm">
            Leave the team
          </Button>
          <Button kind="ghost" small type="button" onClick={() => setConfirming(false)}>
            Stay
          </Button>
        </div>
      ) : (
        <div class="row">
          <Button kind="secondary" small type="button" onClick={() => setConfirming(true)} testid="leave-team-button">
            Leave…
          </Button>
        </div>
      )}
      <FormErrors form={form} known={[]} testid="leave-error" />
    </Card>
  );
}
