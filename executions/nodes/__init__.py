"""The node types the executions app provides: its triggers, logic and http.request.

Registered with the catalog by ExecutionsConfig.ready(); each module keeps its specs
beside its handlers.
"""

from executions.nodes import http, logic, triggers

NODE_TYPES = triggers.NODE_TYPES + http.NODE_TYPES + logic.NODE_TYPES
