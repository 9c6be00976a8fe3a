"""The toolbox's data side: preparing DIV2K and the benchmarks as LMDBs and folders (``data_preparation``), and the
named refusals of undecodable images and records inside basicsr's datasets (``data_faults``), and the checks of the
``datasets`` options (``dataset_checks``)."""
