// Members: who is on the team and their role; admins invite, change roles and remove.

import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { graphql } from "../../gql";
import type { MembersQuery, Role } from "../../gql/graphql";
import { mutate } from "../api";
import type { PageProps } from "../app";
import { Badge, Button, Card, EmptyState, Field, FormErrors, IconUsers, Loadable, Notice, Skeleton, useForm, useQuery } from "../ui";

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

type Member = NonNullable<MembersQuery["team"]>["members"][number];

export function MembersPage(props: PageProps): JSX.Element {
  const state = useQuery(MEMBERS, { id: props.teamId });
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
      {props.canEdit && (
        <div class="col-narrow">
          <Invite teamId={props.teamId} onInvited={state.reload} />
        </div>
      )}
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
