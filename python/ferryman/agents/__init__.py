"""Stock device agents: the hawkBit DDI and Mender device protocols over Ferryman's devices,
resolution and reports. The modules here are pure (no HTTP, no catalog): ``menderfile`` reads a
Mender artifact's header, ``actions`` decides what an agent is told, ``ddi`` and ``mender`` hold
each protocol's rules."""
