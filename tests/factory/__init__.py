"""The bounce factory: real MTAs on loopback make real bounces of known reasons.

- :mod:`factory.install` (``install.sh``): the MTAs, unpacked into a private root;
- :mod:`factory.dns`: the only name server the MTAs see, on loopback;
- :mod:`factory.peer`: the remote side, which answers each recipient as its situation says;
- :mod:`factory.situations`: the situations, each a reply (or misbehaviour) and its reason;
- :mod:`factory.mtas`: one class per MTA, each writing its own configuration;
- :mod:`factory.lab`: brings it all up, submits, waits for the bounces, saves them.
"""
