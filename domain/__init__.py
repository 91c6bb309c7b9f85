"""The pure core: states, permissions, the rules that decide what may happen now and what
a transition changes. Standard library and pydantic only: no tables, clients or settings."""
