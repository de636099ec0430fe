"""Desired state: ``ipvsctl diff``, ``apply`` and ``drain``.

Strategy (docs/apply.md is the user's view, docs/design.md the why):

* ``source``   reads the desired table from a rule file (``-S`` lines, through
               the same parser as ``-R``) or a ``list --json`` document;
* ``plan``     compares it with the live table: a pure function over model
               values, the only place that knows what the kernel can edit in
               place; ``scope`` says which services a plan may touch;
* ``render``   shows a plan (text for people, ipvsadm rules, JSON);
* ``apply``    executes one: lock, snapshot, pipelined batch, undo in reverse
               derived from the snapshot, verify by reading back;
* ``drain``    weight 0, then wait for the connections to end: a small state
               machine per real server driven by one polling loop;
* ``lock``, ``sysctls``: the per-namespace apply lock and the three sysctls
               that change what a drain means.

The subcommands themselves (options in, reports out) are ipvsctl.commands'
diff, apply and drain.

Nothing here is imported by the ipvsadm-compatible command path.
"""
