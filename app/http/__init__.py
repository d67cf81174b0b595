"""The HTTP interface beside GraphQL: middleware, Stripe's webhooks, invoice PDFs."""
