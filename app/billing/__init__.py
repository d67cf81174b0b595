"""Flows that cross domains: auto top-up, charging a closed month, the address sync,
Stripe's events, and the rule that invoiced billing needs a payment method.

The one package above credits, payments and invoices (docs/architecture.md, "Layers").
"""
