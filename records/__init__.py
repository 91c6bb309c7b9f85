"""How the record is read and written: repositories and read models shared by activities
and the API (never by workflows)."""
