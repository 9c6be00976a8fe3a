"""srconvnet-plugin: SRConvNet (Li et al., IJCV) as a native BasicSR architecture."""
from setuptools import find_packages, setup

setup(
    name='srconvnet-plugin',
    version='0.1.0',
    description='SRConvNet (Transformer-style ConvNet for lightweight image SR) for the BasicSR toolbox',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['srconvnet_plugin', 'srconvnet_plugin.*']),
    # files the commands read at run time (the demo's option file); MANIFEST.in puts them into the sdist too
    package_data={'srconvnet_plugin': ['demo_options/*.yml']},
    python_requires='>=3.9',
    # torch is deliberately not pinned: the README's set-up picks the build for the machine.
    install_requires=[
        'torch',
        'torchvision',
        'basicsr>=1.4.2',
        'mmengine',  # complexity: parameter and MAC counts (FlopAnalyzer)
        'thop',  # compare: the counts as commonly reported (thop.profile), beside mmengine's
        'lmdb',
        'opencv-python',
        'numpy',
        'pyyaml',
        'scikit-image',
        'tqdm',
        'matplotlib',
        'pillow',  # option checks read image headers (already pulled in by matplotlib and scikit-image)
        'safetensors',  # .safetensors checkpoints (checkpoints.py)
    ],
    extras_require={
        'spandrel': ['spandrel'],  # srconvnet_plugin.spandrel_support: SRConvNet in ComfyUI / chaiNNer / spandrel
        'test': ['pytest', 'onnx', 'onnxruntime', 'spandrel', 'safetensors'],
    },
    entry_points={
        'console_scripts': [
            'srconvnet-train=srconvnet_plugin.train:main',
            'srconvnet-test=srconvnet_plugin.test:main',
            'srconvnet-demo=srconvnet_plugin.demo:main',
            'srconvnet-infer=srconvnet_plugin.infer:main',
            'srconvnet-convert=srconvnet_plugin.convert:main',
            'srconvnet-compare=srconvnet_plugin.compare:main',
        ],
    },
)
