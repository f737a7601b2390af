"""An ML2 mechanism driver for tcnp's real-cloud tests: it binds every port on every host as an
OVS port, so Nova (fake virt driver) accepts ports without any L2 agent running. No data plane
is configured; nothing leaves the Neutron process."""
from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class BindAllDriver(api.MechanismDriver):
    def initialize(self):
        pass

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        segment = next(iter(context.segments_to_bind), None)
        if segment is None:
            return
        context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OVS,
                            {portbindings.CAP_PORT_FILTER: True, portbindings.OVS_HYBRID_PLUG: False},
                            status=constants.PORT_STATUS_ACTIVE)
