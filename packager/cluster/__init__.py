"""``pack --ray``: the same build-and-verify, one Ray task per (variant, backend, target), gathered here.

* :mod:`.plan`: which packages, which targets, device labels (pure);
* :mod:`.targets`: a target's Ray resource, which nodes may run what (pure);
* :mod:`.policy`: retry or not after a task dies, the timeout guard (pure);
* :mod:`.task`: what runs on a node (the local pipeline's build and verify);
* :mod:`.merge`: the driver writes what comes back and puts it into the report;
* :mod:`.driver`: talking to Ray; :mod:`.cli`: the flags.

Ray is the optional extra ``ray``, imported only with ``--ray``. See docs/cluster.md.
"""
