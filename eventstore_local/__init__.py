"""The project's local tools, kept out of the deployed app: the `eventstore` command, the local Functions
host, stand-ins for Azure services, and the Marain samples the demo, the walk and the tests use.

It may import `eventstore`; `eventstore` never imports it (infra/package.sh zips `eventstore/` alone).
"""
