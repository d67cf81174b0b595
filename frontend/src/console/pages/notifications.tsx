// Notifications: who is emailed besides the admins, at which shares of the invoiced
// spending limit alerts fire, and the balance that counts as low. Admins edit; members
// read.

import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { graphql } from "../../gql";
import type { NotificationSettingsQuery } from "../../gql/graphql";
import { formatUsdExact, parseAmount } from "../../lib/money";
import { mutate, type UserError } from "../api";
import type { PageProps } from "../app";
import { Button, Card, EmptyState, Field, FormErrors, Loadable, Money, Notice, Skeleton, useForm, useQuery } from "../ui";

const SETTINGS = graphql(`
  query NotificationSettings($id: ID!) {
    team(id: $id) { id notificationSettings { emails invoicedLimitThresholds lowBalanceThreshold } }
  }
`);
const UPDATE = graphql(`
  mutation UpdateNotificationSettings($input: UpdateNotificationSettingsInput!) {
    updateNotificationSettings(input: $input) {
      notificationSettings { emails invoicedLimitThresholds lowBalanceThreshold }
      errors { code message field }
    }
  }
`);

type Settings = NonNullable<NotificationSettingsQuery["team"]>["notificationSettings"];

export function NotificationsPage(props: PageProps): JSX.Element {
  const state = useQuery(SETTINGS, { id: props.teamId });
  return (
    <div class="grid">
      <div class="col-wide">
        <Card
          title="Notifications"
          subtitle="Billing alerts, receipts and invoices go to the team's admins and to these addresses."
          testid="notifications"
        >
          <Loadable state={state} skeleton={<Skeleton lines={5} />}>
            {(data) =>
              !data.team ? (
                <EmptyState title="Team not found" />
              ) : props.canEdit ? (
                <SettingsForm
                  teamId={props.teamId}
                  initial={data.team.notificationSettings}
                  onSaved={(notificationSettings) =>
                    state.setData(() => ({ team: { id: props.teamId, notificationSettings } }))
                  }
                />
              ) : (
                <SettingsView settings={data.team.notificationSettings} />
              )
            }
          </Loadable>
        </Card>
      </div>
    </div>
  );
}

function SettingsView(props: { settings: Settings }): JSX.Element {
  const s = props.settings;
  return (
    <dl class="readout-list" data-testid="notifications-view">
      <dt>Also emailed</dt>
      <dd>{s.emails.length ? s.emails.join(", ") : <span class="muted">Only the admins</span>}</dd>
      <dt>Spending limit alerts</dt>
      <dd>{s.invoicedLimitThresholds.length ? s.invoicedLimitThresholds.map((p) => `${p}%`).join(", ") : "Off"}</dd>
      <dt>Low balance below</dt>
      <dd>{s.lowBalanceThreshold ? <Money value={s.lowBalanceThreshold} /> : <span class="muted">The auto top-up threshold</span>}</dd>
    </dl>
  );
}

function SettingsForm(props: { teamId: string; initial: Settings; onSaved: (settings: Settings) => void }): JSX.Element {
  const form = useForm();
  const [emails, setEmails] = useState(props.initial.emails.join("\n"));
  const [thresholds, setThresholds] = useState(props.initial.invoicedLimitThresholds.join(", "));
  const [low, setLow] = useState(props.initial.lowBalanceThreshold ? formatUsdExact(props.initial.lowBalanceThreshold).slice(1) : "");
  const submit = (event: Event): void => {
    event.preventDefault();
    void form.run(async () => {
      const problems: UserError[] = [];
      const emailList = emails
        .split(/[\s,;]+/)
        .map((email) => email.trim())
        .filter(Boolean);
      const percents = thresholds
        .split(/[\s,;%]+/)
        .filter(Boolean)
        .map((part) => (/^\d{1,3}$/.test(part) ? Number(part) : Number.NaN));
      if (percents.some((p) => !Number.isInteger(p) || p < 1 || p > 100)) {
        problems.push({ code: "INVALID_INPUT", message: "Whole percentages from 1 to 100, like 50, 80, 100.", field: "invoicedLimitThresholds" });
      }
      const lowValue = low.trim() ? parseAmount(low) : null;
      if (low.trim() && lowValue === null) {
        problems.push({ code: "INVALID_AMOUNT", message: "Enter an amount in dollars, like 20, or leave it empty.", field: "lowBalanceThreshold" });
      }
      if (problems.length) return problems;
      const payload = await mutate(UPDATE, {
        input: {
          teamId: props.teamId,
          emails: emailList,
          invoicedLimitThresholds: [...new Set(percents)].sort((a, b) => a - b),
          lowBalanceThreshold: lowValue,
        },
      });
      if (payload.errors.length) return payload.errors;
      if (payload.notificationSettings) props.onSaved(payload.notificationSettings);
      return "Notification settings saved.";
    });
  };
  return (
    <form class="stack" onSubmit={submit} noValidate data-testid="notifications-form">
      <Field label="Also email" name="emails" form={form} hint="One address per line; admins are always emailed.">
        <textarea
          name="emails"
          rows={3}
          value={emails}
          onInput={(event) => setEmails(event.currentTarget.value)}
          placeholder="billing@example.com"
          data-testid="notifications-emails"
        />
      </Field>
      <Field
        label="Spending limit alerts (% of the limit)"
        name="invoicedLimitThresholds"
        form={form}
        hint="An alert when invoiced usage reaches each share; empty turns them off."
      >
        <input
          name="invoicedLimitThresholds"
          value={thresholds}
          onInput={(event) => setThresholds(event.currentTarget.value)}
          placeholder="80, 100"
          data-testid="notifications-thresholds"
        />
      </Field>
      <Field
        label="Low balance alert below ($)"
        name="lowBalanceThreshold"
        form={form}
        hint="Empty: the auto top-up threshold is used."
      >
        <input
          name="lowBalanceThreshold"
          inputMode="decimal"
          value={low}
          onInput={(event) => setLow(event.currentTarget.value)}
          data-testid="notifications-low"
        />
      </Field>
      <FormErrors form={form} known={["emails", "invoicedLimitThresholds", "lowBalanceThreshold"]} />
      <Notice form={form} />
      <div class="row">
        <Button busy={form.busy} testid="notifications-submit">
          Save
        </Button>
      </div>
    </form>
  );
}

