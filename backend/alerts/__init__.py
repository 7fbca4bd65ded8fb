"""Alerts: the service watches itself and tells someone through a webhook.

``rules`` reads each rule's conditions from SQL, ``evaluation`` moves the alerts' states once per
interval for the whole deployment (whichever process claims that interval) and queues the webhook
messages those changes call for, ``messages`` writes them, ``webhook`` delivers them from the
outbox, ``tasks`` runs both loops in every web process and arq worker, ``controllers`` shows them.
"""
