"""The components `flwr run` loads: semcom's ServerApp and ClientApp (semcom_cli.federated.app).
Assigned by name, as Flower checks the components in this file without importing it."""

from semcom_cli.federated import app as _semcom

server_app = _semcom.server_app
client_app = _semcom.client_app
