"""People's access: accounts, sign-in with one-time codes, tokens, roles and scopes, break-glass."""
