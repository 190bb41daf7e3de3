"""The durable job queue shared by every stage: claim with a lease, finish, retry, dead-letter."""
