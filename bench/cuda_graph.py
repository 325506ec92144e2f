"""One helper of the bench scripts: a callable captured in a CUDA graph."""


def graphed(fn):
    """fn captured in a CUDA graph (after a warm-up call on a side stream, as torch asks);
    returns the graph's replay."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g.replay
