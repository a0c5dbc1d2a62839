"""The Azure Functions app: build it and register one blueprint per area. Logic lives in `eventstore`."""

import azure.functions as func

from eventstore.functions import BLUEPRINTS

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in BLUEPRINTS:
    app.register_functions(blueprint)
