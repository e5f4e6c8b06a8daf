"""An independent float64 HyperLSTM, written straight from paper-spec §2.5 (not from the module).

Gate by gate, with explicit loops and a hand-written layer norm; it reads the module's parameters by
name only (the storage layout is documented in the module: gate blocks i, f, g, o; z rows
[z_h, z_x, z_b] x gates x N_z; weight_d (3, 4, N_z, N_h)).
"""

import torch

GATES = ("i", "f", "g", "o")


def layer_norm(v, gain, shift, eps):
    mean = v.mean(-1, keepdim=True)
    var = ((v - mean) ** 2).mean(-1, keepdim=True)
    return (v - mean) / torch.sqrt(var + eps) * gain + shift


def gate_blocks(t, n):
    return [t[k * n:(k + 1) * n] for k in range(4)]


def lstm_cell(p, prefix, x, h, c, ln, eps, forget_bias, extra=None, mask=None):
    """Plain (LN-)LSTM step; `extra` adds per-gate terms (for the main cell's scaled pre-activations)."""
    n = h.shape[1]
    W = gate_blocks(p[prefix + "weight_ih"], n)
    U = gate_blocks(p[prefix + "weight_hh"], n)
    b = gate_blocks(p[prefix + "bias"], n) if prefix + "bias" in p else [0.0] * 4
    pre = {}
    for k, y in enumerate(GATES):
        if extra is None:
            v = x @ W[k].T + h @ U[k].T + b[k]
        else:
            v = extra(k, x @ W[k].T, h @ U[k].T) + b[k]
        if ln:
            v = layer_norm(v, p[prefix + "ln_gates.weight"][k], p[prefix + "ln_gates.bias"][k], eps)
        pre[y] = v
    g = torch.tanh(pre["g"])
    if mask is not None:
        g = g * mask
    c_new = torch.sigmoid(pre["f"] + forget_bias) * c + torch.sigmoid(pre["i"]) * g
    c_out = layer_norm(c_new, p[prefix + "ln_cell.weight"], p[prefix + "ln_cell.bias"], eps) if ln else c_new
    h_new = torch.sigmoid(pre["o"]) * torch.tanh(c_out)
    return h_new, c_new


def hyperlstm_step(p, x, state, n_z, ln, eps=1e-3, forget_bias=1.0):
    """One HyperLSTM step, Eq. 10-13 with R1 (z from the current ĥ_t) and R9 (x̂ = [x; h])."""
    h, c, h_hat, c_hat = state
    x_hat = torch.cat([x, h], dim=1)  # Eq. 10 input (code order)
    h_hat, c_hat = lstm_cell(p, "hyper.cell.", x_hat, h_hat, c_hat, ln, eps, forget_bias)
    Wz, bz, Wd = p["hyper.weight_z"], p["hyper.bias_z"], p["hyper.weight_d"]

    def z(group, k):  # Eq. 11
        rows = slice((group * 4 + k) * n_z, (group * 4 + k + 1) * n_z)
        out = h_hat @ Wz[rows].T
        if group < 2:
            out = out + bz[rows]
        return out

    def scaled(k, wx, wh):  # Eq. 12 before b_0 and LN
        d_h = z(0, k) @ Wd[0, k]
        d_x = z(1, k) @ Wd[1, k]
        beta = z(2, k) @ Wd[2, k]
        return d_x * wx + d_h * wh + beta

    h, c = lstm_cell(p, "", x, h, c, ln, eps, forget_bias, extra=scaled)
    return h, c, h_hat, c_hat


def run(params_per_layer, x, states, n_z, ln):
    """Multi-layer run over x (T, B, N_x); states: list of per-layer (h, c, ĥ, ĉ). Returns outputs, states."""
    states = list(states)
    for layer, p in enumerate(params_per_layer):
        outs = []
        for t in range(x.shape[0]):
            states[layer] = hyperlstm_step(p, x[t], states[layer], n_z, ln)
            outs.append(states[layer][0])
        x = torch.stack(outs)
    return x, states
