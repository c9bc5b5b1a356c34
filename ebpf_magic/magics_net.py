"""``%bpf_net``: the lab network, as a line magic."""
from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments


@magics_class
class NetMagics(Magics):
    @magic_arguments()
    @argument("--hosts", nargs="+", metavar="HOST", help="host names, joined in a chain by veth links "
                                                        "(default: a b); only when the network is made")
    @argument("--close", action="store_true", help="detach the programs on it and remove the lab network")
    @line_magic
    def bpf_net(self, line):
        """net = %bpf_net: the lab network (hosts a and b, one veth link), made on first use.

        Each host is a network namespace of its own that lives as long as this
        Python process; addresses come from 192.0.2.0/24 and 2001:db8::/32.
        net.ping("a", "b", count=20), net.udp(...), net.tcp(...) and
        net.run("b", "cat /proc/net/dev") run traffic and commands inside the
        hosts; %%bpf xdp|tc|socket --dev b attaches to host b's interface.
        %bpf_net --close detaches what is attached to it and removes it.
        """
        from .errors import UsageError
        from .magics import _parse
        from .netlab import SESSION_KIND, lab_network
        from .session import SESSION

        args = _parse(self.bpf_net, line)
        if args.close:
            if args.hosts:
                raise UsageError("--close takes no --hosts", hint="%bpf_net --close")
            closed = SESSION.close(SESSION_KIND)
            print("lab network removed" if closed else "no lab network to remove")
            return None
        net = lab_network(create=False)
        if net is not None and args.hosts and list(net.hosts) != args.hosts:
            raise UsageError(f"the lab network already has hosts {', '.join(net.hosts)}",
                             hint="%bpf_net --close first, then %bpf_net --hosts " + " ".join(args.hosts))
        return net or lab_network(create=True, **({"hosts": args.hosts} if args.hosts else {}))
