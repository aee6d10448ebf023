print("swunison")
