"""fake_aws.py on every address of the container, not only 127.0.0.1 (its
default, right for the integration tests on the host): in the compose test
the cost exporter reaches it from another container as fake-aws:4566.
Arguments are fake_aws.py's own (--port, --state, --log)."""

import fake_aws


class Server(fake_aws.Server):
    def __init__(self, address, handler):
        super().__init__(("0.0.0.0", address[1]), handler)


fake_aws.Server = Server  # main() looks the class up when it runs
fake_aws.main()
