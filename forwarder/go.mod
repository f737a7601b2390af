module tcnp/forwarder

go 1.19
