"""A loopback TCP proxy in front of a database server that can reset every connection, or go silent, on demand."""

import queue
import selectors
import socket
import struct
import threading

PASS, RESET, SILENT = "pass", "reset", "silent"
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on with a 0 s timeout: close() sends RST, not FIN


class FaultProxy:
    """Forward 127.0.0.1:<port> to the target, one thread, until told to misbehave.

    - reset(): every open connection is reset (RST), and every new one is reset as soon as it arrives, as when a
      server restarts or a firewall drops state.
    - silent(): nothing is forwarded either way and no connection is accepted, as when a server freezes or the
      network swallows packets; the client's kernel still sees its bytes acknowledged here, so only the client's
      own timers can tell.
    - restore(): forwarding again (what a silent proxy held back goes on, as TCP would retransmit it).
    """

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._mode = PASS
        self._commands = queue.SimpleQueue()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._peers = {}  # socket -> the socket it forwards to
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="fault-proxy", daemon=True)
        self._thread.start()

    def reset(self):
        self._command(RESET)

    def silent(self):
        self._command(SILENT)

    def restore(self):
        self._command(PASS)

    def close(self):
        self._closed = True
        try:
            self._wake_writer.send(b"x")
        except OSError:
            pass  # the loop has ended already, closing its end of the pair (BrokenPipeError)
        finally:
            self._thread.join(timeout=5)
            self._wake_writer.close()  # never left open, or a later test fails on its ResourceWarning

    def _command(self, mode):
        done = threading.Event()
        self._commands.put((mode, done))
        self._wake_writer.send(b"x")
        done.wait(timeout=5)

    def _loop(self):
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_reader, selectors.EVENT_READ, "wake")
        try:
            while not self._closed:
                for key, _events in self._selector.select(timeout=0.5):
                    if key.data == "wake":
                        self._wake_reader.recv(4096)
                    elif key.data == "accept":
                        self._accept()
                    elif self._mode == PASS:
                        self._forward(key.fileobj)
                self._apply_commands()
        finally:
            for sock in list(self._peers):
                if sock in self._peers:
                    self._drop(sock)
            self._selector.close()
            self._listener.close()
            self._wake_reader.close()

    def _apply_commands(self):
        while not self._commands.empty():
            mode, done = self._commands.get()
            self._mode = mode
            if mode == RESET:
                for sock in list(self._peers):
                    if sock in self._peers:  # not dropped already as the other end of a connection
                        self._drop(sock, reset=True)
            # A silent proxy neither reads nor accepts: its sockets and the listener leave the selector's view.
            self._watch(self._listener, "accept", mode != SILENT)
            for sock in self._peers:
                self._watch(sock, "forward", mode == PASS)
            done.set()

    def _watch(self, sock, data, watching):
        registered = sock in self._selector.get_map()
        if watching and not registered:
            self._selector.register(sock, selectors.EVENT_READ, data)
        elif not watching and registered:
            self._selector.unregister(sock)

    def _accept(self):
        client, _address = self._listener.accept()
        if self._mode == RESET:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self._peers[client], self._peers[upstream] = upstream, client
        self._selector.register(client, selectors.EVENT_READ, "forward")
        self._selector.register(upstream, selectors.EVENT_READ, "forward")

    def _forward(self, sock):
        peer = self._peers.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(65536)
            if data:
                peer.sendall(data)
                return
        except OSError:
            pass
        self._drop(sock)

    def _drop(self, sock, reset=False):
        """Close a connection from both ends; with reset, both ends get an RST."""
        peer = self._peers.pop(sock, None)
        for end in (sock, peer):
            if end is None:
                continue
            self._peers.pop(end, None)
            if end in self._selector.get_map():
                self._selector.unregister(end)
            if reset:
                try:
                    end.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
                except OSError:
                    pass
            end.close()
