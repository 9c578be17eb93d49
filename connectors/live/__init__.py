"""Live mode: the real APIs of Stripe, Shopify and the CRM.

    runner.py    the one event loop a process's live calls run on, and the deadline per call
    http.py      the httpx client, transport errors (sent again, or reconciled), status codes,
                 Retry-After, credentials kept out of messages
    throttle.py  client-side rate limits: a token bucket, Shopify's cost bucket
    config.py    what each connector needs (addresses, credentials, pinned API versions)
    base.py      LiveConnector (call, find, read_only on the loop, with the deadline), Unconfigured
    stripe.py    Stripe through the official SDK (StripeClient, httpx)
    shopify.py   Shopify's Admin GraphQL API over httpx
    crm.py       HubSpot's CRM API over httpx
"""
