// Invoices: this month's invoiced usage so far, then every issued invoice with its PDF.

import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { graphql } from "../../gql";
import type { InvoiceFieldsFragment } from "../../gql/graphql";
import { asUserErrors, gql, mutate } from "../api";
import type { PageProps } from "../app";
import {
  Badge,
  Button,
  Card,
  EmptyState,
  formatDate,
  formatPeriod,
  IconFile,
  Loadable,
  Money,
  Skeleton,
  titleCase,
  useForm,
  useQuery,
} from "../ui";

const INVOICE_FIELDS = graphql(`
  fragment InvoiceFields on Invoice { id number kind status currency periodStart periodEnd total issuedAt paidAt pdfUrl }
`);
void INVOICE_FIELDS;
const INVOICES = graphql(`
  query Invoices($id: ID!, $after: String) {
    team(id: $id) {
      id
      invoices(first: 20, after: $after) { edges { node { ...InvoiceFields } } pageInfo { hasNextPage endCursor } }
    }
  }
`);
const UPCOMING = graphql(`
  query UpcomingInvoice($id: ID!) {
    team(id: $id) {
      id
      upcomingInvoice { periodStart periodEnd subtotal tax total lines { description quantity unitAmount amount } }
    }
  }
`);
const PAY_INVOICE = graphql(`
  mutation PayInvoice($input: PayInvoiceInput!) {
    payInvoice(input: $input) { invoice { id status } errors { code message field } }
  }
`);

type Invoice = InvoiceFieldsFragment;
type PageInfo = { hasNextPage: boolean; endCursor: string | null };

const STATUS_TONE: Record<Invoice["status"], "green" | "amber" | "red" | "grey"> = {
  PAID: "green",
  OPEN: "amber",
  PAYMENT_FAILED: "red",
  VOID: "grey",
};

export function InvoicesPage(props: PageProps): JSX.Element {
  return (
    <div class="stack-page">
      <UpcomingInvoice teamId={props.teamId} />
      <InvoiceList teamId={props.teamId} canEdit={props.canEdit} />
    </div>
  );
}

function UpcomingInvoice(props: { teamId: string }): JSX.Element | null {
  const state = useQuery(UPCOMING, { id: props.teamId });
  if (state.data && !state.data.team?.upcomingInvoice) return null;
  return (
    <Card title="This month so far" subtitle="Invoiced usage to be billed at the end of the month." testid="upcoming-invoice">
      <Loadable state={state} skeleton={<Skeleton lines={2} />}>
        {(data) => {
          const upcoming = data.team?.upcomingInvoice;
          if (!upcoming) return null;
          return (
            <div class="upcoming">
              <div>
                <div class="eyebrow" data-testid="upcoming-period">
                  {formatPeriod(upcoming.periodStart, upcoming.periodEnd)}
                </div>
                <Money class="balance-total balance-total-small" value={upcoming.total} testid="upcoming-total" />
              </div>
              <table class="table">
                <tbody>
                  {upcoming.lines.map((line) => (
                    <tr key={line.description}>
                      <td>{line.description}</td>
                      <td class="num">
                        <Money value={line.amount} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          );
        }}
      </Loadable>
    </Card>
  );
}

function InvoiceList(props: { teamId: string; canEdit: boolean }): JSX.Element {
  const state = useQuery(INVOICES, { id: props.teamId, after: null });
  const [more, setMore] = useState<Invoice[]>([]);
  const [cursor, setCursor] = useState<PageInfo | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [moreError, setMoreError] = useState<string | null>(null);
  const loadMore = (): void => {
    const pageInfo = cursor ?? state.data?.team?.invoices.pageInfo;
    if (!pageInfo?.endCursor) return;
    setLoadingMore(true);
    setMoreError(null);
    gql(INVOICES, { id: props.teamId, after: pageInfo.endCursor })
      .then((data) => {
        if (!data.team) return;
        const page = data.team.invoices;
        setMore((previous) => [...previous, ...page.edges.map((edge) => edge.node)]);
        setCursor(page.pageInfo);
      })
      .catch((caught: unknown) => setMoreError(asUserErrors(caught)[0].message))
      .finally(() => setLoadingMore(false));
  };
  return (
    <Card title="Invoices" testid="invoices">
      <Loadable state={state} skeleton={<Skeleton lines={4} height={18} />}>
        {(data) => {
          const invoices = [...(data.team?.invoices.edges.map((edge) => edge.node) ?? []), ...more];
          const pageInfo = cursor ?? data.team?.invoices.pageInfo;
          if (!invoices.length) {
            return (
              <EmptyState title="No invoices yet" icon={<IconFile />}>
                Each credit purchase gets an invoice, and so does each month with invoiced usage.
              </EmptyState>
            );
          }
          return (
            <>
              <table class="table" data-testid="invoice-table">
                <thead>
                  <tr>
                    <th>Number</th>
                    <th>Kind</th>
                    <th>Period / issued</th>
                    <th>Status</th>
                    <th class="num">Total</th>
                    <th class="num">PDF</th>
                  </tr>
                </thead>
                <tbody>
                  {invoices.map((invoice) => (
                    <InvoiceRow
                      key={invoice.id}
                      teamId={props.teamId}
                      invoice={invoice}
                      canEdit={props.canEdit}
                      onPaid={state.reload}
                    />
                  ))}
                </tbody>
              </table>
              {moreError && (
                <div class="form-error" role="alert">
                  {moreError}
                </div>
              )}
              {pageInfo?.hasNextPage && (
                <div class="row">
                  <Button kind="ghost" type="button" busy={loadingMore} onClick={loadMore}>
                    Load more
                  </Button>
                </div>
              )}
            </>
          );
        }}
      </Loadable>
    </Card>
  );
}

function InvoiceRow(props: { teamId: string; invoice: Invoice; canEdit: boolean; onPaid: () => void }): JSX.Element {
  const { invoice } = props;
  const form = useForm();
  const payable = props.canEdit && (invoice.status === "PAYMENT_FAILED" || invoice.status === "OPEN");
  const pay = (): void => {
    void form.run(async () => {
      const payload = await mutate(PAY_INVOICE, { input: { teamId: props.teamId, invoiceId: invoice.id } });
      if (!payload.errors.length) props.onPaid();
      return payload.errors;
    });
  };
  return (
    <>
      <tr data-testid="invoice-row">
        <td class="mono" data-label="Number">{invoice.number}</td>
        <td data-label="Kind">{invoice.kind === "MONTHLY_USAGE" ? "Monthly usage" : "Credit purchase"}</td>
        <td data-label="Period">
          {invoice.kind === "MONTHLY_USAGE" && invoice.periodStart
            ? formatPeriod(invoice.periodStart, invoice.periodEnd)
            : formatDate(invoice.issuedAt)}
        </td>
        <td data-label="Status">
          <Badge tone={STATUS_TONE[invoice.status]}>{titleCase(invoice.status)}</Badge>
          {payable && (
            <Button kind="secondary" small type="button" busy={form.busy} onClick={pay} testid="invoice-pay">
              Pay now
            </Button>
          )}
        </td>
        <td class="num" data-label="Total">
          <Money value={invoice.total} /> <span class="muted">{invoice.currency.toUpperCase()}</span>
        </td>
        <td class="num" data-label="PDF">
          <a href={invoice.pdfUrl} target="_blank" rel="noopener" data-testid="invoice-pdf">
            Download
          </a>
        </td>
      </tr>
      {form.errors.length > 0 && (
        <tr>
          <td colSpan={6}>
            {form.errors.map((error) => (
              <div class="field-error" role="alert" data-code={error.code} data-testid="invoice-error" key={error.message}>
                {error.message}
              </div>
            ))}
          </td>
        </tr>
      )}
    </>
  );
}
