"""One running gateway, assembled from settings: the database, the log and its signer, the policies
and their reload, the live tamper check, metrics and the background loops."""
