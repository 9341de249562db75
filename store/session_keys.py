"""Keys of ``Session.info`` shared by the unit of work and the store's after-change hooks
(a module of its own, so the hooks need not import the unit of work that imports them)."""

UNIT_OF_WORK = "unit_of_work"
"""The key of ``Session.info`` that holds the unit of work the session belongs to."""

FAN_OUT_WANTED = "lifecycle.fan_out_wanted"
"""Set in ``Session.info`` by a change whose events an endpoint may want: the unit of work
then sends ``fan_out_events`` after the commit (the sweep fans out anyway, should the
message be lost)."""
