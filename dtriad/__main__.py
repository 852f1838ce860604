from dtriad.ops.main import main

main()
