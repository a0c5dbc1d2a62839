"""`DevHost`: serves a Functions app locally, and `serve()`, which runs one in the foreground."""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

import azure.functions as func

from eventstore_local.host.config import (
    ConfigError,
    HostConfig,
    is_disabled,
    load_local_settings,
    uses_development_storage,
)
from eventstore_local.host.functions import (
    HTTP_TRIGGER,
    QUEUE_TRIGGER,
    TIMER_TRIGGER,
    FunctionSpec,
    Invoker,
    describe,
)
from eventstore_local.host.httpserver import HttpFrontend
from eventstore_local.host.queues import QueueListener, StorageQueues
from eventstore_local.host.timers import TimerRunner
from eventstore_local.settings import AppSettings, LocalSettings

log = logging.getLogger("eventstore_local.host")


class DevHost:
    """Serves the functions of a `func.FunctionApp` as the Functions host would, from their own metadata.

    `app` is a `FunctionApp` (asked once for its functions) or the list its `get_functions()` returned.
    `environ` holds the app settings used to resolve bindings (connection settings, `%Name%` references,
    `AzureWebJobs.<name>.Disabled`); default `AppSettings.current()`, the process environment. It is not
    copied into the environment: functions read their own settings from the process environment.
    `development_storage` is the connection string `UseDevelopmentStorage=true` stands for (a started
    `Azurite`'s); default Azurite's standard ports. `port=0` picks a free port; `base_url` says which.
    """

    def __init__(
        self,
        app: func.FunctionApp | Iterable[func.Function],
        *,
        port: int = 7071,
        bind: str = "127.0.0.1",
        environ: Mapping[str, str] | None = None,
        host_json: HostConfig | Path | str | Mapping[str, Any] | None = None,
        development_storage: str | None = None,
    ) -> None:
        self.environ: Mapping[str, str] = AppSettings.current() if environ is None else dict(environ)
        self.config = HostConfig.load(host_json)
        self.port = port
        self.bind = bind
        self.development_storage = development_storage
        self.functions: list[FunctionSpec] = []
        self.skipped: dict[str, str] = {}
        for spec in describe(app):
            reason = self._skip_reason(spec)
            if reason is None:
                self.functions.append(spec)
            else:
                self.skipped[spec.name] = reason
        self._invoker: Invoker | None = None
        self._http: HttpFrontend | None = None
        self._queues: StorageQueues | None = None
        self._listeners: list[QueueListener] = []
        self._timers: list[TimerRunner] = []

    def _skip_reason(self, spec: FunctionSpec) -> str | None:
        if self.config.functions is not None and spec.name not in self.config.functions:
            return "not listed in host.json 'functions'"
        if is_disabled(spec.name, self.environ):
            return f"disabled by AzureWebJobs.{spec.name}.Disabled"
        return spec.unsupported()

    # -- lifecycle ---------------------------------------------------------------------------------------

    def needs_development_storage(self) -> bool:
        """Whether a served function uses storage whose setting is `UseDevelopmentStorage=true`."""
        for spec in self.functions:
            for binding in (spec.trigger, *spec.outputs):
                if binding.get("type") in (QUEUE_TRIGGER, "queue") and uses_development_storage(
                    binding.get("connection"), self.environ
                ):
                    return True
        return False

    def start(self) -> Self:
        if self._invoker is not None:
            return self
        self._invoker = Invoker()
        try:
            self._queues = StorageQueues(self.environ, self.config.queues.message_encoding, self.development_storage)
            on_success = self._queues.send_outputs
            http_specs = [s for s in self.functions if s.trigger_type == HTTP_TRIGGER]
            self._http = HttpFrontend(
                http_specs, self.config, self._invoker, bind=self.bind, port=self.port, on_success=on_success
            )
            self._listeners = [
                QueueListener(s, self._queues, self.config.queues, self._invoker)
                for s in self.functions
                if s.trigger_type == QUEUE_TRIGGER
            ]
            self._timers = [
                TimerRunner(s, self._invoker, self.environ, on_success)
                for s in self.functions
                if s.trigger_type == TIMER_TRIGGER
            ]
            self._http.start()
            for listener in self._listeners:
                listener.start()
            for timer in self._timers:
                timer.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops triggering, waits for running functions, closes the server."""
        for timer in self._timers:
            timer.stop()
        for listener in self._listeners:
            listener.stop()
        if self._http is not None:
            self._http.stop()
        if self._queues is not None:
            self._queues.close()
        if self._invoker is not None:
            self._invoker.close()
        self._timers, self._listeners = [], []
        self._http = self._queues = self._invoker = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` of the running host."""
        if self._http is None:
            raise RuntimeError("the host is not running: call start() first")
        return self._http.base_url

    @property
    def api_url(self) -> str:
        """`base_url` plus the route prefix (`/api` by default)."""
        prefix = self.config.route_prefix
        return f"{self.base_url}/{prefix}" if prefix else self.base_url

    def banner(self) -> str:
        """What is served where, for people."""
        lines = []
        if self._http is not None:
            for route in self._http.routes:
                methods = ",".join(sorted(route.methods)) if route.methods else "*"
                auth = str(route.spec.trigger.get("authLevel", "")).lower() or "function"
                lines.append(f"  {route.spec.name}: [{methods}] {self._http.url_for(route)}  (auth level {auth})")
        for listener in self._listeners:
            lines.append(f"  {listener.spec.name}: queue {listener.queue_name} (poison: {listener.poison_name})")
        for timer in self._timers:
            when = f"next {timer.next_run.isoformat(timespec='seconds')}" if timer.next_run else ""
            startup = ", run on startup" if timer.run_on_startup else ""
            lines.append(f"  {timer.spec.name}: timer '{timer.schedule.expression}' ({when}{startup})")
        for name, reason in self.skipped.items():
            lines.append(f"  {name}: not served: {reason}")
        q = self.config.queues
        return "\n".join(
            [
                "Functions:",
                *lines,
                "HTTP auth levels are not enforced by this local host: no keys are needed.",
                f"Queues: messageEncoding {q.message_encoding}, batchSize {q.batch_size}, maxDequeueCount "
                f"{q.max_dequeue_count}, visibilityTimeout {q.visibility_timeout:g} s, maxPollingInterval "
                f"{q.max_polling_interval:g} s.",
            ]
        )


def load_app(reference: str, project_root: Path | None = None) -> func.FunctionApp:
    """`module:attribute` (default attribute `app`) imported with `project_root` on `sys.path`."""
    module_name, _, attribute = reference.partition(":")
    root = str((project_root or Path.cwd()).resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.import_module(module_name)
    app = getattr(module, attribute or "app", None)
    if not isinstance(app, func.FunctionApp):
        raise ConfigError(f"{reference}: not a func.FunctionApp")
    return app


def serve(
    app: func.FunctionApp | str = "function_app:app",
    *,
    port: int = 7071,
    bind: str = "127.0.0.1",
    project_root: Path | str | None = None,
    host_json: Path | str | None = None,
    local_settings: Path | str | None = None,
    azurite: bool | None = None,
    companions: Sequence[Callable[[DevHost], AbstractContextManager[object]]] = (),
) -> int:
    """Runs the app in the foreground until Ctrl-C (or SIGTERM); returns an exit code.

    App settings: `local.settings.json` `Values` (in `project_root`, or `local_settings`) are added to
    the process environment where not already set (empty values are skipped). `azurite=None` starts Azurite
    (workspace `.local/azurite`, standard ports) when a served function's storage setting is
    `UseDevelopmentStorage=true` and nothing listens on the standard queue port yet; True always, False never.
    `companions` run beside the host (the sample engine): each is entered once the host serves, given the
    host, and exited before the host stops.
    """
    from eventstore_local.standins.azurite import DEFAULT_QUEUE_PORT, Azurite, AzuriteError, port_open

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs log every storage request at INFO
    root = Path(project_root or Path.cwd()).resolve()
    settings_file = Path(local_settings) if local_settings else root / "local.settings.json"
    AppSettings.set_defaults(load_local_settings(settings_file))  # as scripts/run: empty means "not set"
    host_file = Path(host_json) if host_json else root / "host.json"
    functions_app = load_app(app, root) if isinstance(app, str) else app

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    storage: Azurite | None = None
    host: DevHost | None = None
    beside = ExitStack()
    try:
        host = DevHost(functions_app, port=port, bind=bind, host_json=host_file if host_file.exists() else None)
        wanted = host.needs_development_storage() if azurite is None else azurite
        if wanted and (azurite or not port_open(DEFAULT_QUEUE_PORT)):
            configured = LocalSettings().local_dir
            local = (root / ".local" if configured is None else configured) / "azurite"
            print(f"starting Azurite in {local}", flush=True)
            storage = Azurite(local, blob_port=10000, queue_port=10001, table_port=10002).start()
            host.development_storage = storage.connection_string
        elif wanted:
            print(f"using the Azurite already listening on 127.0.0.1:{DEFAULT_QUEUE_PORT}", flush=True)
        host.start()
        print(host.banner(), flush=True)
        for companion in companions:
            beside.enter_context(companion(host))
        print(f"Listening on {host.base_url} - press Ctrl-C to stop", flush=True)
        while not stopping.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    except (ConfigError, AzuriteError, OSError) as exc:  # bad settings, Azurite missing, port in use
        print(f"devhost: error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        beside.close()
        if host is not None:
            print("stopping", flush=True)
            host.stop()
        if storage is not None:
            storage.stop()
    return 0
