"""System checks of the node catalog, run at start-up (runserver, migrate, `manage.py check`).

A node type whose handler is missing would only show when a run reaches it ("not available
on this Inflow server"); a node family whose app forgot to register it would make
`sync_node_types` delete its rows and every flow using it invalid. Both stop the start.
"""

from __future__ import annotations

from importlib import import_module

from django.apps import apps
from django.core.checks import Error, register
from django.utils.module_loading import module_has_submodule

from flows import catalog


@register()
def check_node_handlers(app_configs, **kwargs) -> list[Error]:
    """inflow.E010: every registered node type that needs a handler has a callable one."""
    return [
        Error(
            f"Node type {spec.type!r} has no handler (got {spec.handler!r}).",
            hint="Give its NodeSpec handler=<the function that runs it>, beside that function.",
            obj=spec.type,
            id="inflow.E010",
        )
        for spec in catalog.all_specs()
        if spec.needs_handler and not callable(spec.handler)
    ]


@register()
def check_node_families_registered(app_configs, **kwargs) -> list[Error]:
    """inflow.E011: each app's `nodes` module has registered every spec of its NODE_TYPES."""
    errors = []
    for app_config in apps.get_app_configs():
        if not module_has_submodule(app_config.module, "nodes"):
            continue
        module = import_module(f"{app_config.name}.nodes")
        for spec in getattr(module, "NODE_TYPES", ()):
            if catalog.get_spec(spec.type) is not spec:
                errors.append(
                    Error(
                        f"Node type {spec.type!r} of {module.__name__} is not in the catalog.",
                        hint=f"Call flows.catalog.register(*NODE_TYPES) in {type(app_config).__name__}.ready().",
                        obj=spec.type,
                        id="inflow.E011",
                    )
                )
    return errors
