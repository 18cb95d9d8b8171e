"""Who may act: users and their units, tokens, browser sign-in, single sign-on, throttling."""
