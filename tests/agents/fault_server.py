"""The tests' OpenAI-compatible server with injectable faults: the shipped stand-in server.

``FaultServer(respond, faults)`` is ``swirl_agents.stand_in_server.StandInServer``: tests
start it with ``with``, point ``OpenAIPolicy`` at ``server.base_url`` and queue faults
(``"500"``, ``"429"``, ``"slow:SECONDS"``, ``"drop"``, ``"malformed"``, ...); each request
takes the next one, or ``"ok"`` when the queue is empty.
"""

from swirl_agents.stand_in_server import StandInServer as FaultServer

__all__ = ["FaultServer"]
