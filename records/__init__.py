"""How the record is read and written: repositories and read models shared by activities,
the API and the command line (never by workflows)."""
