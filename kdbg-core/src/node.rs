//! Nodes: the `Node` trait every node access goes through, and its transports (ssh, minikube, kind, local).
