"""The database: connection and migrations, the tables, ids, and the query helpers (listings, JSON Logic
filters, leases) the services share."""
