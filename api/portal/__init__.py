"""The web portal: server-rendered pages at the root of the public host.

Pages are Jinja templates (``mutabaqa/templates/portal/``) whose texts are gettext
messages of the shared catalogues; sessions are cookies (``sessions``); every action goes
through the functions the JSON API uses (``api/routes/auth.authenticate``,
``api/routes/requests.request_summaries``, ``api/request_actions.perform_action``...).
``docs/portal.md`` says what exists and what comes next.
"""
