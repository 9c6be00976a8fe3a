"""Rewrite an exported graph for ONNX Runtime's CPU provider on x86-64: run-time depthwise kernels in NCHWc form.

ONNX Runtime runs a depthwise ``Conv`` whose weights are constant through its blocked (NCHWc) kernels, but one whose
weights the graph computes (SRConvNet's dynamic convs: each image mixes its own kernels from the bank) through
im2col and a one-row product per channel, several times slower. Its own NCHWc operators (domain
``com.microsoft.nchwc``, the ones its optimiser puts in place of constant-weight convs) take run-time weights as
well, in their blocked layout. ``for_onnxruntime_cpu`` replaces every such conv by

    ReorderInput(x) → nchwc Conv(·, reordered kernels, bias) → ReorderOutput

with the kernels reordered in the graph from (C, 1, kh, kw) to the blocked (C/B, kh, kw, B) layout. The block size B
is the one of the CPU the graph runs on (16 with AVX-512, 8 with AVX2): the graph reads it from the channel count
``ReorderInput`` gives a 4-channel constant (padded to one block; ONNX Runtime folds it when it loads the graph),
so a rewritten graph runs on any x86-64 CPU that ONNX Runtime gives NCHWc kernels. The numbers do not change (the
same convolution; float32 rounding). Such a graph loads only in ONNX Runtime's CPU provider: the portable graph is the
default of ``srconvnet.export``.
"""
from srconvnet.export.common import ExportError

NCHWC = 'com.microsoft.nchwc'
# the rewritten conv's channels must split into blocks of any NCHWc block size ONNX Runtime uses (4, 8 or 16)
CHANNEL_MULTIPLE = 16


def _attributes(node):
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _constants(graph, outer=frozenset()):
    """Names of the tensors that are constant in ``graph``: its initializers, Constant outputs, and ``outer``'s."""
    names = set(outer) | {t.name for t in graph.initializer}
    names |= {o for n in graph.node if n.op_type == 'Constant' for o in n.output}
    return names


def _subgraphs(node):
    """The graphs held by ``node``'s attributes (a Scan's or Loop's body, an If's branches)."""
    from onnx import AttributeProto

    return [a.g for a in node.attribute if a.type == AttributeProto.GRAPH] + [
        g for a in node.attribute if a.type == AttributeProto.GRAPHS for g in a.graphs]


def _graphs(graph):
    """``graph`` and all its subgraphs, depth first."""
    yield graph
    for node in graph.node:
        for sub in _subgraphs(node):
            yield from _graphs(sub)


def _inferred_shapes(model_proto):
    """{tensor name: list of dims (int, or None where unknown)} from ONNX's shape inference, subgraphs included."""
    from onnx import shape_inference

    shapes = {}
    for graph in _graphs(shape_inference.infer_shapes(model_proto).graph):
        for info in list(graph.value_info) + list(graph.input) + list(graph.output):
            if info.type.tensor_type.HasField('shape'):
                shapes[info.name] = [d.dim_value if d.HasField('dim_value') else None
                                     for d in info.type.tensor_type.shape.dim]
    return shapes


def _rewritable(node, constants, shapes):
    """Whether ``node`` is a 2-D depthwise Conv with run-time weights (known to be group × 1 × kh × kw) that the NCHWc
    Conv takes as it is."""
    if node.op_type != 'Conv' or node.domain not in ('', 'ai.onnx') or len(node.input) < 2:
        return False
    attributes = _attributes(node)
    group, kernel = attributes.get('group', 1), attributes.get('kernel_shape')
    return (node.input[1] not in constants and group > 1 and group % CHANNEL_MULTIPLE == 0 and kernel is not None
            and len(kernel) == 2 and shapes.get(node.input[1]) == [group, 1, *kernel]
            and attributes.get('auto_pad', b'NOTSET') in (b'NOTSET', 'NOTSET'))


def _rewrite_graph(graph, outer, counter, shapes):
    """Rewrite ``graph`` (and its subgraphs) in place; returns how many convs were replaced."""
    from onnx import TensorProto, helper

    constants = _constants(graph, outer)
    replaced = 0
    nodes = []
    block = minus_one = None  # the tensors holding [B] and [-1], made once per graph where first needed
    for node in graph.node:
        for sub in _subgraphs(node):
            replaced += _rewrite_graph(sub, constants, counter, shapes)
        if not _rewritable(node, constants, shapes):
            nodes.append(node)
            continue
        counter[0] += 1
        prefix = f'nchwc_dw{counter[0]}_'
        if block is None:
            block = prefix + 'block'
            probe = prefix + 'probe'
            # 4 channels (ReorderInput takes multiples of 4) padded to one block: [1, B, 1, 1]
            graph.initializer.append(helper.make_tensor(probe, TensorProto.FLOAT, [1, 4, 1, 1], [0.0] * 4))
            minus_one = prefix + 'minus_one'
            graph.initializer.extend([helper.make_tensor(prefix + 'one', TensorProto.INT64, [1], [1]),
                                      helper.make_tensor(prefix + 'two', TensorProto.INT64, [1], [2]),
                                      helper.make_tensor(minus_one, TensorProto.INT64, [1], [-1])])
            nodes += [helper.make_node('ReorderInput', [probe], [probe + '_blocked'], domain=NCHWC, channels_last=0),
                      helper.make_node('Shape', [probe + '_blocked'], [probe + '_shape']),
                      helper.make_node('Slice', [probe + '_shape', prefix + 'one', prefix + 'two'], [block])]
        attributes = _attributes(node)
        group, (kh, kw) = attributes['group'], attributes['kernel_shape']
        x, weight = node.input[0], node.input[1]
        bias = list(node.input[2:3])
        graph.initializer.extend([helper.make_tensor(prefix + 'taps', TensorProto.INT64, [1], [kh * kw]),
                                  helper.make_tensor(prefix + 'oihw', TensorProto.INT64, [4], [group, 1, kh, kw])])
        conv_attributes = {name: attributes[name] for name in ('pads', 'strides', 'dilations') if name in attributes}
        nodes += [
            # (C, 1, kh, kw) -> (C/B, B, kh·kw) -> (C/B, kh·kw, B): the blocked depthwise filter layout
            helper.make_node('Concat', [minus_one, block, prefix + 'taps'], [prefix + 'split'], axis=0),
            helper.make_node('Reshape', [weight, prefix + 'split'], [prefix + 'w_split']),
            helper.make_node('Transpose', [prefix + 'w_split'], [prefix + 'w_blocked'], perm=[0, 2, 1]),
            helper.make_node('Reshape', [prefix + 'w_blocked', prefix + 'oihw'], [prefix + 'w']),
            helper.make_node('ReorderInput', [x], [prefix + 'x'], domain=NCHWC, channels_last=0),
            helper.make_node('Conv', [prefix + 'x', prefix + 'w'] + bias, [prefix + 'y'], domain=NCHWC, group=group,
                             kernel_shape=[kh, kw], **conv_attributes),
            helper.make_node('ReorderOutput', [prefix + 'y'], list(node.output), domain=NCHWC, channels=group,
                             channels_last=0)]
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return replaced


def for_onnxruntime_cpu(model_proto):
    """``model_proto`` (changed in place and returned) with every depthwise conv whose kernels are computed in the
    graph (shape group × 1 × kh × kw by ONNX's shape inference) run by ONNX Runtime's NCHWc operators; raises
    ``ExportError`` (a ``ValueError``) if the graph has no such conv."""
    from onnx import helper

    counter = [0]
    if _rewrite_graph(model_proto.graph, frozenset(), counter, _inferred_shapes(model_proto)) == 0:
        raise ExportError('the graph has no depthwise conv with run-time kernels of a known shape and a multiple of '
                         f'{CHANNEL_MULTIPLE} channels to rewrite for ONNX Runtime (num_feat must be a multiple of '
                         f'{CHANNEL_MULTIPLE})')
    if not any(o.domain == NCHWC for o in model_proto.opset_import):
        model_proto.opset_import.append(helper.make_opsetid(NCHWC, 1))
    return model_proto
