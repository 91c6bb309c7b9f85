"""HTTP: thin routers that authenticate, authorise, translate and call the workflow."""
