"""Every `warden` command, one module each; `gateway.cli.main` assembles them."""
