"""Activities do I/O: database, object store, PDF, signing, mail. One class per resource."""
